/**
 * `npm run build:ui`: bundles the dashboard (ui/src, Preact + htm) into ui/dist/ with esbuild, next to its
 * page and style sheet. ui/dist/ is committed, so installing and serving loraplex builds nothing;
 * test/ui/assets.test.ts builds into a temporary folder (`--out DIR`) and checks the committed files match.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

const ui = join(import.meta.dirname, '..', 'ui');
const outFlag = process.argv.indexOf('--out');
const dist = outFlag > 0 ? process.argv[outFlag + 1] : join(ui, 'dist');
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [join(ui, 'src', 'main.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  legalComments: 'eof',
  outfile: join(dist, 'app.js'),
  logLevel: 'warning',
});
await copyFile(join(ui, 'index.html'), join(dist, 'index.html'));
await copyFile(join(ui, 'app.css'), join(dist, 'app.css'));
console.log(`${dist}: index.html, app.js, app.css`);
