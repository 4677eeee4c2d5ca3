/**
 * Adapters written to temporary directories the way PEFT's save_pretrained lays them out, over a small
 * Llama-shaped base whose projections all have different in/out sizes (so a swapped dimension shows).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { type ModuleKind, moduleShape } from '../../src/model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../../src/model/safetensors.ts';
import { type ErrorCode, LoraplexError } from '../../src/observability/errors.ts';

/** q: 8→12, k/v: 8→6, o: 12→8, gate/up: 8→10, down: 10→8 */
export const BASE: ModelConfig = {
  family: 'llama',
  architecture: 'LlamaForCausalLM',
  vocabSize: 32,
  hiddenSize: 8,
  intermediateSize: 10,
  numLayers: 3,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 3,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: false,
  attentionBias: false,
  mlpBias: false,
  slidingWindow: null,
  layerTypes: ['full', 'full', 'full'],
  localRope: null,
  hiddenActivation: 'silu',
  attentionScale: 3 ** -0.5,
  attnLogitSoftcap: null,
  finalLogitSoftcap: null,
  bosTokenId: 1,
  eosTokenIds: [2],
  dtype: 'f32',
};

export const ALL_KINDS: ModuleKind[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export function moduleKey(layer: number, kind: ModuleKind): string {
  const parent = ['q_proj', 'k_proj', 'v_proj', 'o_proj'].includes(kind) ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${parent}.${kind}`;
}

export function tensorName(layer: number, kind: ModuleKind, factor: 'lora_A' | 'lora_B', infix = ''): string {
  return `base_model.model.${moduleKey(layer, kind)}.${factor}${infix}.weight`;
}

/** Deterministic, distinct values: A and B of every module can be told apart. */
export function factorValues(
  layer: number,
  kind: ModuleKind,
  factor: 'lora_A' | 'lora_B',
  count: number,
): Float32Array {
  const seed = layer * 1000 + ALL_KINDS.indexOf(kind) * 100 + (factor === 'lora_A' ? 0 : 50);
  return Float32Array.from({ length: count }, (_, i) => ((seed + i * 7) % 97) / 64 - 0.75);
}

export interface ModuleSpec {
  layer: number;
  kind: ModuleKind;
  rank: number;
  inFeatures?: number; // override, to fake another base model
  outFeatures?: number;
}

export type FloatDType = 'F32' | 'F16' | 'BF16';

function encode(values: Float32Array, dtype: FloatDType): ArrayBufferView {
  if (dtype === 'F32') return values;
  const convert = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  return Uint16Array.from(values, (v) => convert(v));
}

/** lora_A [rank, in] and lora_B [out, rank] tensors for each module, as PEFT names them. */
export function loraTensors(specs: ModuleSpec[], opts: { dtype?: FloatDType; infix?: string } = {}): TensorToWrite[] {
  const dtype = opts.dtype ?? 'F32';
  const out: TensorToWrite[] = [];
  for (const s of specs) {
    const shape = moduleShape(BASE, s.kind);
    const k = s.inFeatures ?? shape.inFeatures;
    const n = s.outFeatures ?? shape.outFeatures;
    out.push({
      name: tensorName(s.layer, s.kind, 'lora_A', opts.infix),
      dtype,
      shape: [s.rank, k],
      data: encode(factorValues(s.layer, s.kind, 'lora_A', s.rank * k), dtype),
    });
    out.push({
      name: tensorName(s.layer, s.kind, 'lora_B', opts.infix),
      dtype,
      shape: [n, s.rank],
      data: encode(factorValues(s.layer, s.kind, 'lora_B', n * s.rank), dtype),
    });
  }
  return out;
}

/** Every layer × the given kinds at one rank. */
export function everyLayer(kinds: ModuleKind[], rank: number, numLayers = BASE.numLayers): ModuleSpec[] {
  const out: ModuleSpec[] = [];
  for (let layer = 0; layer < numLayers; layer++) for (const kind of kinds) out.push({ layer, kind, rank });
  return out;
}

/** A minimal adapter_config.json as PEFT 0.21 writes it; `overrides` replace or add fields. */
export function peftConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: 4,
    lora_alpha: 8,
    target_modules: ['q_proj', 'v_proj'],
    lora_dropout: 0.05,
    bias: 'none',
    use_rslora: false,
    use_dora: false,
    fan_in_fan_out: false,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
    layers_to_transform: null,
    layers_pattern: null,
    base_model_name_or_path: 'tiny/llama',
    peft_version: '0.21.2',
    ...overrides,
  };
}

export class TempDirs {
  private readonly dirs: string[] = [];

  async make(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'loraplex-adapter-'));
    this.dirs.push(dir);
    return dir;
  }

  /** A directory with adapter_config.json (object, or raw text) and adapter_model.safetensors (if tensors given). */
  async adapter(config: Record<string, unknown> | string, tensors?: TensorToWrite[]): Promise<string> {
    const dir = await this.make();
    const text = typeof config === 'string' ? config : JSON.stringify(config, null, 2);
    await writeFile(join(dir, 'adapter_config.json'), text);
    if (tensors) await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    return dir;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Asserts that `run` rejects with a LoraplexError of `code` whose message contains every fragment. */
export async function assertRejects(run: () => Promise<unknown>, code: ErrorCode, ...fragments: string[]) {
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof LoraplexError, `expected a LoraplexError, got ${String(e)}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    for (const f of fragments)
      assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

export function assertThrows(run: () => unknown, code: ErrorCode, ...fragments: string[]) {
  return assertRejects(async () => run(), code, ...fragments);
}
