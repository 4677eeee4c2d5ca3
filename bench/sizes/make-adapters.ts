/**
 * The bench models' PEFT adapters (`npm run bench:models`, after oracle/bench_models.py): rank 16 on all seven
 * projections, seeded, bf16, written once into <bench-models>/<name>/adapters/<count>x-r16/ by the same synthetic
 * store bench:serving uses (skipped when its stamp matches the model's shape).
 *
 *   tsx bench/sizes/make-adapters.ts [--root DIR] [--count 32]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../../src/demo/demo-model.ts';
import { readModelConfig } from '../../src/model/model-dir.ts';
import { ensureSyntheticStore } from '../peft-store.ts';

const { values: args } = parseArgs({
  options: { root: { type: 'string' }, count: { type: 'string', default: '32' } },
});
const root = args.root ?? join(cacheRoot(), 'bench-models');
for (const name of ['llama3-1b', 'llama3-8b']) {
  const modelDir = join(root, name, 'model');
  if (!existsSync(join(modelDir, 'config.json'))) continue;
  const t0 = performance.now();
  const store = await ensureSyntheticStore(
    join(root, name, 'adapters'),
    await readModelConfig(modelDir),
    Number(args.count),
    16,
  );
  console.error(`${name}: ${args.count} adapters in ${store} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
