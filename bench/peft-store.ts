/**
 * An adapter store of synthetic PEFT adapters for a model (rank r on all seven projections, seeded random
 * bf16 weights), written once under the cache for serving benchmarks: NIM's layout, one folder per adapter.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectionParent } from '../src/adapters/peft/targeting.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { MODULE_KINDS, moduleShape } from '../src/model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../src/model/safetensors.ts';

function randomBf16(rng: SeededRandom, n: number, scale: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = f32ToBf16((rng.uniform() * 2 - 1) * scale);
  return out;
}

async function writeAdapter(dir: string, config: ModelConfig, rank: number, seed: number) {
  const rng = new SeededRandom(seed);
  const tensors: TensorToWrite[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of MODULE_KINDS) {
      const { inFeatures, outFeatures } = moduleShape(config, kind);
      const p = `base_model.model.model.layers.${l}.${projectionParent(kind)}.${kind}`;
      tensors.push({
        name: `${p}.lora_A.weight`,
        dtype: 'BF16',
        shape: [rank, inFeatures],
        data: randomBf16(rng, rank * inFeatures, 1 / Math.sqrt(inFeatures)),
      });
      tensors.push({
        name: `${p}.lora_B.weight`,
        dtype: 'BF16',
        shape: [outFeatures, rank],
        data: randomBf16(rng, outFeatures * rank, 0.05),
      });
    }
  }
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const cfg = { peft_type: 'LORA', r: rank, lora_alpha: 2 * rank, target_modules: [...MODULE_KINDS], bias: 'none' };
  await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
}

/** `root/<count>x-r<rank>/a000…`: written once (atomically), reused after. */
export async function ensureSyntheticStore(root: string, config: ModelConfig, count: number, rank: number) {
  const dir = join(root, `${count}x-r${rank}`);
  const stamp = `${config.hiddenSize}/${config.intermediateSize}/${config.numLayers}`;
  if ((await readFile(join(dir, '.complete'), 'utf8').catch(() => null)) === stamp) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  for (let i = 0; i < count; i++) await writeAdapter(join(tmp, adapterName(i)), config, rank, 9000 + i);
  await writeFile(join(tmp, '.complete'), stamp);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

export const adapterName = (i: number) => `a${String(i).padStart(3, '0')}`;
