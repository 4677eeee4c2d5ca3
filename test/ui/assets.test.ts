/** The committed ui/dist/ is what `npm run build:ui` makes from ui/ now: nobody forgot to rebuild. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

test('ui/dist matches a fresh build of ui/', async () => {
  const out = await mkdtemp(join(tmpdir(), 'loraplex-ui-build-'));
  try {
    execFileSync(process.execPath, [join(root, 'scripts', 'build-ui.mjs'), '--out', out], { stdio: 'pipe' });
    for (const file of ['index.html', 'app.js', 'app.css']) {
      const fresh = await readFile(join(out, file));
      const committed = await readFile(join(root, 'ui', 'dist', file));
      assert.ok(fresh.equals(committed), `ui/dist/${file} is stale: run \`npm run build:ui\` and commit ui/dist`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
