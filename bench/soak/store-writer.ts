/**
 * The soak's adapter store: many good synthetic PEFT adapters (seeded; ranks 4–32, various target sets, bf16)
 * for any model config, plus adapters broken on purpose — each one a fault a store can hold in the wild — and
 * the uploads directory that runtime loads point into.
 *
 *   const store = await writeSoakStore(root, config, { adapters: 200, seed: 1 });
 *   store.good  // ['s000', …]      store.bad  // [{ name: 'bad-fifo-weights', kind: 'fifo-weights' }, …]
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { projectionParent } from '../../src/adapters/peft/targeting.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { f32ToBf16 } from '../../src/kernels/dtype.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { MODULE_KINDS, type ModuleKind, moduleShape } from '../../src/model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../../src/model/safetensors.ts';

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

export const GOOD_RANKS = [4, 8, 16, 32] as const;
const TARGET_SETS: ModuleKind[][] = [
  ['q_proj', 'v_proj'],
  ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  ['gate_proj', 'up_proj', 'down_proj'],
  [...MODULE_KINDS],
];

export const BAD_KINDS = [
  'broken-json',
  'truncated-header',
  'wrong-shapes',
  'rank-too-high',
  'nan-weights',
  'huge-weights',
  'alpha-1e300',
  'fifo-weights',
  'config-symlink-out',
  'weights-symlink-out',
] as const;
export type BadKind = (typeof BAD_KINDS)[number];

export interface AdapterSpec {
  rank: number;
  alpha: number;
  targets: ModuleKind[];
  seed: number;
}

export interface SoakStore {
  storeDir: string;
  uploadsDir: string;
  /** Outside every root: where the symlinked config points. */
  outsideDir: string;
  good: string[];
  specs: Map<string, AdapterSpec>;
  bad: { name: string; kind: BadKind }[];
}

export const goodName = (i: number) => `s${String(i).padStart(3, '0')}`;

/** The spec of good adapter i: ranks and targets cycle with a seeded shuffle, so every mix is present. */
export function goodSpec(i: number, seed: number): AdapterSpec {
  const rng = new BenchRandom(seed).fork(i);
  const rank = GOOD_RANKS[rng.int(GOOD_RANKS.length)];
  return { rank, alpha: rank * (1 + rng.int(2)), targets: TARGET_SETS[rng.int(TARGET_SETS.length)], seed: 1000 + i };
}

function tensorsFor(config: ModelConfig, spec: AdapterSpec, fill: (rng: BenchRandom, scale: number) => number) {
  const rng = new BenchRandom(spec.seed);
  const tensors: TensorToWrite[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of spec.targets) {
      const { inFeatures, outFeatures } = moduleShape(config, kind);
      const p = `base_model.model.model.layers.${l}.${projectionParent(kind)}.${kind}`;
      const bf16 = (n: number, scale: number) => {
        const out = new Uint16Array(n);
        for (let j = 0; j < n; j++) out[j] = f32ToBf16(fill(rng, scale));
        return out;
      };
      const a = bf16(spec.rank * inFeatures, 1 / Math.sqrt(inFeatures));
      const b = bf16(outFeatures * spec.rank, 0.05);
      tensors.push({ name: `${p}.lora_A.weight`, dtype: 'BF16', shape: [spec.rank, inFeatures], data: a });
      tensors.push({ name: `${p}.lora_B.weight`, dtype: 'BF16', shape: [outFeatures, spec.rank], data: b });
    }
  }
  return tensors;
}

const uniform = (rng: BenchRandom, scale: number) => (rng.next() * 2 - 1) * scale;

function configJson(spec: AdapterSpec, extra: Record<string, unknown> = {}) {
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: spec.rank,
    lora_alpha: spec.alpha,
    target_modules: spec.targets,
    bias: 'none',
    ...extra,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Writes a good adapter; each file goes to a temporary name first and is renamed over the old one, so a
 * reader racing a replacement sees the old file or the new one, never half of either. */
export async function writeAdapter(dir: string, config: ModelConfig, spec: AdapterSpec) {
  await mkdir(dir, { recursive: true });
  const tmp = `.tmp-${process.pid}`;
  await writeSafetensors(join(dir, `${WEIGHTS}${tmp}`), tensorsFor(config, spec, uniform), { format: 'pt' });
  await writeFile(join(dir, `${CONFIG}${tmp}`), configJson(spec));
  await rename(join(dir, `${WEIGHTS}${tmp}`), join(dir, WEIGHTS));
  await rename(join(dir, `${CONFIG}${tmp}`), join(dir, CONFIG));
}

/** Writes a broken adapter of `kind` into `dir` (a fresh directory). */
export async function writeBadAdapter(dir: string, kind: BadKind, config: ModelConfig, outside: string) {
  await rm(dir, { recursive: true, force: true });
  const spec: AdapterSpec = { rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], seed: 77 };
  await writeAdapter(dir, config, spec);
  switch (kind) {
    case 'broken-json':
      return writeFile(join(dir, CONFIG), configJson(spec).slice(0, 40));
    case 'truncated-header': {
      const bytes = await readFile(join(dir, WEIGHTS));
      const headerLen = Number(bytes.readBigUInt64LE(0));
      return writeFile(join(dir, WEIGHTS), bytes.subarray(0, 8 + Math.floor(headerLen / 2)));
    }
    case 'wrong-shapes': {
      const wide = { ...config, hiddenSize: config.hiddenSize + 3 };
      return writeSafetensors(join(dir, WEIGHTS), tensorsFor(wide, spec, uniform), { format: 'pt' });
    }
    case 'rank-too-high': {
      const big = { ...spec, rank: 128, alpha: 128 };
      await writeSafetensors(join(dir, WEIGHTS), tensorsFor(config, big, uniform), { format: 'pt' });
      return writeFile(join(dir, CONFIG), configJson(big));
    }
    case 'nan-weights':
      return writeSafetensors(
        join(dir, WEIGHTS),
        tensorsFor(config, spec, () => Number.NaN),
        { format: 'pt' },
      );
    case 'huge-weights':
      return writeSafetensors(
        join(dir, WEIGHTS),
        tensorsFor(config, spec, () => 1e30),
        { format: 'pt' },
      );
    case 'alpha-1e300':
      return writeFile(join(dir, CONFIG), configJson(spec, { lora_alpha: 1e300 }));
    case 'fifo-weights':
      await rm(join(dir, WEIGHTS));
      execFileSync('mkfifo', [join(dir, WEIGHTS)]);
      return;
    case 'config-symlink-out': {
      await mkdir(outside, { recursive: true });
      const secret = join(outside, 'secret.json');
      await writeFile(secret, '{"SECRET-CONTENT": "root:x:0:0"}\n');
      await rm(join(dir, CONFIG));
      return symlink(secret, join(dir, CONFIG));
    }
    case 'weights-symlink-out': {
      await mkdir(outside, { recursive: true });
      const target = join(outside, `weights-${basename(dir)}.safetensors`);
      await rename(join(dir, WEIGHTS), target);
      return symlink(target, join(dir, WEIGHTS));
    }
  }
}

export async function writeSoakStore(
  root: string,
  config: ModelConfig,
  opts: { adapters: number; seed: number },
): Promise<SoakStore> {
  const store: SoakStore = {
    storeDir: join(root, 'store'),
    uploadsDir: join(root, 'uploads'),
    outsideDir: join(root, 'outside'),
    good: [],
    specs: new Map(),
    bad: [],
  };
  await mkdir(store.uploadsDir, { recursive: true });
  for (let i = 0; i < opts.adapters; i++) {
    const name = goodName(i);
    const spec = goodSpec(i, opts.seed);
    await writeAdapter(join(store.storeDir, name), config, spec);
    store.good.push(name);
    store.specs.set(name, spec);
  }
  for (const kind of BAD_KINDS) {
    const name = `bad-${kind}`;
    await writeBadAdapter(join(store.storeDir, name), kind, config, store.outsideDir);
    store.bad.push({ name, kind });
  }
  return store;
}
