/**
 * An adapter store of synthetic PEFT adapters for a model (rank r on all seven projections, seeded random
 * bf16 weights; LoRA, or DoRA with a magnitude vector per module), written once under the cache for serving
 * benchmarks: NIM's layout, one folder per adapter.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectionParent } from '../src/adapters/peft/targeting.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import { weightFormat } from '../src/kernels/weight-format.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { MODULE_KINDS, type ModuleKind, moduleShape } from '../src/model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../src/model/safetensors.ts';
import type { LoadedModel } from '../src/model/weights.ts';

function randomBf16(rng: SeededRandom, n: number, scale: number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = f32ToBf16((rng.uniform() * 2 - 1) * scale);
  return out;
}

/**
 * LoRA; DoRA (PEFT's use_dora: a magnitude per output row; the server computes ‖W + s·B·A‖ at load); or VeRA
 * (PEFT's VERA: one shared vera_A / vera_B pair, a scaling vector pair per module).
 */
export type AdapterKind = 'lora' | 'dora' | 'vera';

/** The base model's weights, for DoRA magnitudes near the base's row norms (as PEFT initialises them). */
export type BaseWeights = LoadedModel['weights'];

/** ‖W row‖ · (1 ± 5 %): a trained DoRA magnitude stays close to the base's norm; a random one wrecks the model. */
function magnitudes(rng: SeededRandom, base: BaseWeights, layer: number, kind: ModuleKind): Uint16Array {
  const w = base.layers[layer].linear[kind];
  if (!w) throw new Error(`the base has no ${kind} in layer ${layer}`);
  const values = weightFormat(w.dtype).decode(w);
  const out = new Uint16Array(w.rows);
  for (let r = 0; r < w.rows; r++) {
    let sum = 0;
    for (let c = 0; c < w.cols; c++) sum += values[r * w.cols + c] ** 2;
    out[r] = f32ToBf16(Math.sqrt(sum) * (0.95 + 0.1 * rng.uniform()));
  }
  return out;
}

async function writeAdapter(
  dir: string,
  config: ModelConfig,
  rank: number,
  seed: number,
  adapterKind: AdapterKind,
  base?: BaseWeights,
) {
  if (adapterKind === 'vera') return writeVeraAdapter(dir, config, rank, seed);
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
      if (adapterKind === 'dora') {
        if (!base) throw new Error('DoRA adapters need the base weights');
        tensors.push({
          name: `${p}.lora_magnitude_vector`,
          dtype: 'BF16',
          shape: [outFeatures],
          data: magnitudes(rng, base, l, kind),
        });
      }
    }
  }
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const cfg = {
    peft_type: 'LORA',
    r: rank,
    lora_alpha: 2 * rank,
    target_modules: [...MODULE_KINDS],
    bias: 'none',
    ...(adapterKind === 'dora' ? { use_dora: true } : {}),
  };
  await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
}

/**
 * A VeRA adapter as PEFT saves it with save_projection: the shared projections sized for the widest module
 * (vera_A [r, maxIn], vera_B [maxOut, r]), and per module vera_lambda_d [r] and vera_lambda_b [out].
 */
async function writeVeraAdapter(dir: string, config: ModelConfig, rank: number, seed: number) {
  const rng = new SeededRandom(seed);
  const shapes = MODULE_KINDS.map((kind) => moduleShape(config, kind));
  const maxIn = Math.max(...shapes.map((s) => s.inFeatures));
  const maxOut = Math.max(...shapes.map((s) => s.outFeatures));
  const tensors: TensorToWrite[] = [
    {
      name: 'base_model.vera_A',
      dtype: 'BF16',
      shape: [rank, maxIn],
      data: randomBf16(rng, rank * maxIn, 1 / Math.sqrt(maxIn)),
    },
    { name: 'base_model.vera_B', dtype: 'BF16', shape: [maxOut, rank], data: randomBf16(rng, maxOut * rank, 0.05) },
  ];
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of MODULE_KINDS) {
      const { outFeatures } = moduleShape(config, kind);
      const p = `base_model.model.model.layers.${l}.${projectionParent(kind)}.${kind}`;
      tensors.push({ name: `${p}.vera_lambda_d`, dtype: 'BF16', shape: [rank], data: randomBf16(rng, rank, 2) });
      tensors.push({
        name: `${p}.vera_lambda_b`,
        dtype: 'BF16',
        shape: [outFeatures],
        data: randomBf16(rng, outFeatures, 1),
      });
    }
  }
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const cfg = { peft_type: 'VERA', r: rank, target_modules: [...MODULE_KINDS], save_projection: true, bias: 'none' };
  await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
}

/** `root/<count>x-r<rank>[-dora]/a000…`: written once (atomically), reused after. */
export async function ensureSyntheticStore(
  root: string,
  config: ModelConfig,
  count: number,
  rank: number,
  kind: AdapterKind = 'lora',
) {
  const names = Array.from({ length: count }, (_, i) => [adapterName(i), kind] as const);
  return writeOnce(join(root, `${count}x-r${rank}${kind === 'lora' ? '' : `-${kind}`}`), config, rank, names);
}

/** `root/kinds-<count>x-r<rank>/<kind>-000…`: `count` adapters of each kind in one store. */
export async function ensureKindsStore(root: string, model: LoadedModel, count: number, rank: number) {
  const kinds: AdapterKind[] = ['lora', 'dora', 'vera'];
  const names = kinds.flatMap((kind) =>
    Array.from({ length: count }, (_, i) => [kindAdapterName(kind, i), kind] as const),
  );
  // "-v2": the store gained VeRA adapters; an older kinds store holds only LoRA and DoRA.
  return writeOnce(join(root, `kinds-v2-${count}x-r${rank}`), model.config, rank, names, model.weights);
}

export const kindAdapterName = (kind: AdapterKind, i: number) => `${kind}-${String(i).padStart(3, '0')}`;

async function writeOnce(
  dir: string,
  config: ModelConfig,
  rank: number,
  adapters: (readonly [string, AdapterKind])[],
  base?: BaseWeights,
) {
  const stamp = `${config.hiddenSize}/${config.intermediateSize}/${config.numLayers}`;
  if ((await readFile(join(dir, '.complete'), 'utf8').catch(() => null)) === stamp) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  for (const [i, [name, kind]] of adapters.entries())
    await writeAdapter(join(tmp, name), config, rank, 9000 + i, kind, base);
  await writeFile(join(tmp, '.complete'), stamp);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

export const adapterName = (i: number) => `a${String(i).padStart(3, '0')}`;
