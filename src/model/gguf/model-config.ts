/**
 * A GGUF model file's metadata as the project's ModelConfig, read as llama.cpp's llama_model::load_hparams
 * reads it for the "llama" and "qwen2" archs: {arch}.context_length, embedding_length, block_count, feed_forward_length,
 * attention.head_count(_kv), attention.key_length, rope.freq_base, rope.scaling.*, rope.dimension_count,
 * attention.layer_norm_rms_epsilon; the vocabulary size from the token list (else {arch}.vocab_size, else
 * the embedding's rows); tied embeddings when there is no output.weight (llama.cpp then reuses token_embd);
 * RoPE factors per frequency from rope_freqs.weight (what the converter writes for Llama 3.1+ scaling).
 */

import type { ModelConfig, RopeScaling } from '../config.ts';
import { ConfigError } from '../config-parse.ts';
import { specOf } from '../spec/index.ts';
import { type GgufMetadata, GgufValueType } from './gguf-file.ts';

/** llama.cpp archs served, and the family whose forward pass they run. Mistral's GGUFs say "llama" too. */
const ARCHS = { llama: 'llama', qwen2: 'qwen2' } as const;

const INTEGER_TYPES = new Set([
  GgufValueType.UINT8,
  GgufValueType.INT8,
  GgufValueType.UINT16,
  GgufValueType.INT16,
  GgufValueType.UINT32,
  GgufValueType.INT32,
  GgufValueType.UINT64,
  GgufValueType.INT64,
]);
const FLOAT_TYPES = new Set([GgufValueType.FLOAT32, GgufValueType.FLOAT64]);

export class GgufFields {
  constructor(
    readonly meta: GgufMetadata,
    readonly file: string,
  ) {}

  private invalid(key: string, problem: string): ConfigError {
    return new ConfigError('config_invalid', `${this.file}: GGUF metadata '${key}' ${problem}`);
  }

  has(key: string): boolean {
    return this.meta.has(key);
  }

  string(key: string): string | undefined {
    const e = this.meta.get(key);
    if (e === undefined) return undefined;
    if (e.type !== GgufValueType.STRING || typeof e.value !== 'string') throw this.invalid(key, 'must be a string');
    return e.value;
  }

  /** A non-negative integer (a positive one unless zeroOk). */
  int(key: string, fallback?: number, zeroOk = false): number {
    const e = this.meta.get(key);
    if (e === undefined) {
      if (fallback !== undefined) return fallback;
      throw this.invalid(key, 'is missing (the file was not written by a llama.cpp converter?)');
    }
    const v = typeof e.value === 'bigint' ? Number(e.value) : e.value;
    if (!INTEGER_TYPES.has(e.type) || !Number.isSafeInteger(v) || (v as number) < (zeroOk ? 0 : 1)) {
      throw this.invalid(key, `must be a ${zeroOk ? 'non-negative' : 'positive'} integer`);
    }
    return v as number;
  }

  positive(key: string, fallback?: number): number {
    const e = this.meta.get(key);
    if (e === undefined) {
      if (fallback !== undefined) return fallback;
      throw this.invalid(key, 'is missing');
    }
    if (!FLOAT_TYPES.has(e.type) || typeof e.value !== 'number' || !(e.value > 0) || !Number.isFinite(e.value)) {
      throw this.invalid(key, 'must be a positive finite float');
    }
    return e.value;
  }

  /** An array of `type` values, or undefined when absent. */
  array(key: string, type: GgufValueType): unknown[] | undefined {
    const e = this.meta.get(key);
    if (e === undefined) return undefined;
    if (e.type !== GgufValueType.ARRAY || !Array.isArray(e.value) || e.subType !== type) {
      throw this.invalid(key, `must be an array of ${GgufValueType[type]}`);
    }
    return e.value;
  }
}

export interface GgufModelShape {
  /** Tensor names in the file. */
  tensors: ReadonlySet<string>;
  /** token_embd's rows (its ne[1]). */
  embeddingRows: number;
  /** rope_freqs.weight's values: llama.cpp's per-frequency RoPE factors (Llama 3.1+ scaling), when present. */
  ropeFreqs?: Float32Array;
}

function ropeScaling(g: GgufFields, arch: string, shape: GgufModelShape, headDim: number): RopeScaling | null {
  const type = g.string(`${arch}.rope.scaling.type`) ?? 'none';
  if (shape.ropeFreqs !== undefined) {
    const factors = [...shape.ropeFreqs];
    if (type !== 'none' || factors.length !== headDim / 2 || !factors.every((x) => x > 0 && Number.isFinite(x))) {
      throw new ConfigError(
        'config_invalid',
        `${g.file}: rope_freqs.weight must hold ${headDim / 2} positive factors (key_length / 2), with no other rope.scaling`,
      );
    }
    return { type: 'factors', factors };
  }
  if (type === 'none') return null;
  if (type === 'linear') return { type: 'linear', factor: g.positive(`${arch}.rope.scaling.factor`) };
  throw new ConfigError(
    'config_unsupported',
    `${g.file}: ${arch}.rope.scaling.type ${JSON.stringify(type.slice(0, 40))} is not supported (none and linear are)`,
  );
}

export function ggufModelConfig(g: GgufFields, shape: GgufModelShape): ModelConfig {
  const generalType = g.string('general.type');
  if (generalType !== undefined && generalType !== 'model') {
    throw new ConfigError(
      'config_invalid',
      `${g.file}: general.type is ${JSON.stringify(generalType.slice(0, 40))}; a model file says "model"` +
        (generalType === 'adapter' ? ' (a GGUF LoRA adapter is served with --adapter or --lora-dir)' : ''),
    );
  }
  const arch = g.string('general.architecture');
  if (arch === undefined) throw new ConfigError('config_invalid', `${g.file}: general.architecture is missing`);
  if (!Object.hasOwn(ARCHS, arch)) {
    throw new ConfigError(
      'config_unsupported',
      `${g.file}: general.architecture ${JSON.stringify(arch.slice(0, 40))} is not served from GGUF (${Object.keys(ARCHS).join(', ')} are)`,
    );
  }
  const family = ARCHS[arch as keyof typeof ARCHS];
  const hiddenSize = g.int(`${arch}.embedding_length`);
  const numHeads = g.int(`${arch}.attention.head_count`);
  const numKvHeads = g.int(`${arch}.attention.head_count_kv`, numHeads);
  const headDim = g.int(`${arch}.attention.key_length`, Math.floor(hiddenSize / numHeads));
  if (g.int(`${arch}.attention.value_length`, headDim) !== headDim || numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      'config_unsupported',
      `${g.file}: attention shapes not served (key_length = value_length and head_count a multiple of head_count_kv are)`,
    );
  }
  if (g.int(`${arch}.rope.dimension_count`, headDim) !== headDim) {
    throw new ConfigError(
      'config_unsupported',
      `${g.file}: partial RoPE (rope.dimension_count < key_length) is not served`,
    );
  }
  const tokens = g.array('tokenizer.ggml.tokens', GgufValueType.STRING);
  const vocabSize = tokens?.length ?? g.int(`${arch}.vocab_size`, shape.embeddingRows);
  const numLayers = g.int(`${arch}.block_count`);
  const bos = g.has('tokenizer.ggml.bos_token_id') ? g.int('tokenizer.ggml.bos_token_id', 0, true) : null;
  const eos = g.has('tokenizer.ggml.eos_token_id') ? [g.int('tokenizer.ggml.eos_token_id', 0, true)] : [];
  return {
    family,
    architecture: specOf(family).architecture,
    vocabSize,
    hiddenSize,
    intermediateSize: g.int(`${arch}.feed_forward_length`),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: g.positive(`${arch}.attention.layer_norm_rms_epsilon`),
    ropeTheta: g.positive(`${arch}.rope.freq_base`, 10000),
    ropeScaling: ropeScaling(g, arch, shape, headDim),
    localRope: null,
    maxPositionEmbeddings: g.int(`${arch}.context_length`),
    tieWordEmbeddings: !shape.tensors.has('output.weight'),
    // Qwen2 always has q/k/v biases; a Llama with attention_bias has them (and o's) in the file.
    attentionBias: family === 'qwen2' || shape.tensors.has('blk.0.attn_q.bias'),
    mlpBias: false,
    slidingWindow: null,
    layerTypes: Array.from({ length: numLayers }, () => 'full' as const),
    hiddenActivation: 'silu',
    attentionScale: headDim ** -0.5,
    attnLogitSoftcap: null,
    finalLogitSoftcap: null,
    bosTokenId: bos,
    eosTokenIds: eos,
    dtype: 'f32', // set by the loader to the dtype the matrices are stored in
  };
}
