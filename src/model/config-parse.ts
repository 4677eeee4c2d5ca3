/**
 * config.json (Hugging Face transformers 4.x or 5.x layout) → ModelConfig.
 * Anything the forward pass would get wrong is refused with an error that names the file, the field,
 * the value found and what is supported, rather than silently ignored.
 *
 *   const config = parseModelConfig(JSON.parse(text), '/models/llama/config.json');
 */
import type { WeightDType } from '../kernels/types.ts';
import type { ModelConfig, ModelFamily, RopeScalingLlama3 } from './config.ts';

export type ConfigErrorCode = 'config_invalid' | 'config_unsupported';

export class ConfigError extends Error {
  constructor(
    readonly code: ConfigErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

const ARCHITECTURES: Record<string, ModelFamily> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};
const MODEL_TYPES: Record<string, ModelFamily> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };
const ARCHITECTURE_OF: Record<ModelFamily, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};
// transformers' defaults for fields a config.json may leave out.
const DEFAULT_MAX_POSITIONS: Record<ModelFamily, number> = { llama: 2048, mistral: 131072, qwen2: 32768 };
const DTYPES: Record<string, WeightDType> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };
const SILU_NAMES = ['silu', 'swish'];

type Json = Record<string, unknown>;

/** A table lookup that ignores inherited keys ("constructor", "toString"). */
function lookup<T>(table: Record<string, T>, key: unknown): T | undefined {
  return typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined;
}

function show(value: unknown): string {
  return value === undefined ? 'missing' : JSON.stringify(value);
}

/** Reads fields of one JSON object and reports problems with the file's name. */
class FieldReader {
  constructor(
    readonly json: Json,
    readonly source: string,
  ) {}

  invalid(field: string, value: unknown, expected: string): ConfigError {
    return new ConfigError('config_invalid', `${this.source}: '${field}' is ${show(value)}; expected ${expected}`);
  }

  unsupported(field: string, value: unknown, supported: string): ConfigError {
    return new ConfigError(
      'config_unsupported',
      `${this.source}: '${field}' is ${show(value)}; supported: ${supported}`,
    );
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.json[field];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw this.invalid(field, v, 'a positive integer');
    return v;
  }

  positiveNumber(field: string, fallback: number, obj: Json = this.json, label = field): number {
    const v = obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.invalid(label, v, 'a positive number');
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.json[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw this.invalid(field, v, 'true or false');
    return v;
  }

  tokenId(field: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw this.invalid(field, v, 'a token id');
    return v;
  }
}

export function parseModelConfig(json: unknown, source: string): ModelConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError('config_invalid', `${source}: expected a JSON object`);
  }
  const r = new FieldReader(json as Json, source);
  const family = parseFamily(r);
  refuseUnsupportedFeatures(r, family);

  const hiddenSize = r.positiveInt('hidden_size');
  const numHeads = r.positiveInt('num_attention_heads');
  const numKvHeads = r.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw r.invalid('num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  }
  const headDim = parseHeadDim(r, hiddenSize, numHeads);
  const maxPositionEmbeddings = r.positiveInt('max_position_embeddings', DEFAULT_MAX_POSITIONS[family]);
  const { ropeTheta, ropeScaling } = parseRope(r);

  return {
    family,
    architecture: ARCHITECTURE_OF[family],
    vocabSize: r.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: r.positiveInt('intermediate_size'),
    numLayers: r.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    attentionBias: family === 'qwen2' || (family === 'llama' && r.bool('attention_bias', false)),
    mlpBias: false,
    slidingWindow: parseSlidingWindow(r, family),
    bosTokenId: r.json.bos_token_id == null ? null : r.tokenId('bos_token_id', r.json.bos_token_id),
    eosTokenIds: parseEos(r),
    dtype: parseDtype(r),
  };
}

function parseFamily(r: FieldReader): ModelFamily {
  const supported = Object.keys(ARCHITECTURES).join(', ');
  const archs = r.json.architectures;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0) throw r.invalid('architectures', archs, 'a list of class names');
    if (archs.length > 1) throw r.unsupported('architectures', archs, `exactly one of ${supported}`);
    const family = lookup(ARCHITECTURES, archs[0]);
    if (!family) throw r.unsupported('architectures', archs, supported);
    return family;
  }
  // transformers 5 omits `architectures` from configs built by hand; model_type still says the family.
  const family = lookup(MODEL_TYPES, r.json.model_type);
  if (!family) {
    throw r.unsupported(
      'model_type',
      r.json.model_type,
      `${Object.keys(MODEL_TYPES).join(', ')} (or architectures: ${supported})`,
    );
  }
  return family;
}

function refuseUnsupportedFeatures(r: FieldReader, family: ModelFamily) {
  const act = r.json.hidden_act ?? 'silu';
  if (!SILU_NAMES.includes(act as string)) throw r.unsupported('hidden_act', act, '"silu"');
  if (family === 'llama' && r.bool('mlp_bias', false)) {
    throw r.unsupported('mlp_bias', true, 'false (MLP biases are not implemented)');
  }
  if (r.json.quantization_config != null) {
    throw r.unsupported('quantization_config', r.json.quantization_config, 'none (unquantized f32/f16/bf16 weights)');
  }
}

function parseHeadDim(r: FieldReader, hiddenSize: number, numHeads: number): number {
  if (r.json.head_dim == null && hiddenSize % numHeads !== 0) {
    throw r.invalid(
      'head_dim',
      r.json.head_dim,
      `a value: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`,
    );
  }
  const headDim = r.positiveInt('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw r.invalid('head_dim', headDim, 'an even number (RoPE rotates pairs)');
  return headDim;
}

/**
 * transformers 4.x: rope_theta + rope_scaling ({rope_type | type, ...} or null).
 * transformers 5.x: rope_parameters {rope_theta, rope_type, ...}.
 */
function parseRope(r: FieldReader): { ropeTheta: number; ropeScaling: RopeScalingLlama3 | null } {
  const v5 = r.json.rope_parameters;
  const field = v5 != null ? 'rope_parameters' : 'rope_scaling';
  const params = v5 ?? r.json.rope_scaling ?? null;
  if (params !== null && (typeof params !== 'object' || Array.isArray(params))) {
    throw r.invalid(field, params, 'an object or null');
  }
  const p = (params ?? {}) as Json;
  const topLevelTheta = r.positiveNumber('rope_theta', 10000);
  const ropeTheta = r.positiveNumber('rope_theta', topLevelTheta, p, `${field}.rope_theta`);
  const typeKey = p.rope_type !== undefined ? 'rope_type' : 'type';
  const type = p[typeKey] ?? 'default';
  const partial = p.partial_rotary_factor ?? r.json.partial_rotary_factor ?? 1;
  if (partial !== 1) throw r.unsupported(`${field}.partial_rotary_factor`, partial, '1 (RoPE over the whole head)');
  if (type === 'default') return { ropeTheta, ropeScaling: null };
  if (type !== 'llama3') {
    throw r.unsupported(`${field}.${typeKey}`, type, '"default" (or no scaling) and "llama3"');
  }
  const num = (key: string) => {
    const value = p[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw r.invalid(`${field}.${key}`, value, 'a positive number (required by llama3 RoPE)');
    }
    return value;
  };
  const lowFreqFactor = num('low_freq_factor');
  const highFreqFactor = num('high_freq_factor');
  if (highFreqFactor <= lowFreqFactor) {
    throw r.invalid(`${field}.high_freq_factor`, highFreqFactor, `a value above low_freq_factor (${lowFreqFactor})`);
  }
  return {
    ropeTheta,
    ropeScaling: {
      type: 'llama3',
      factor: num('factor'),
      lowFreqFactor,
      highFreqFactor,
      originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
    },
  };
}

function parseSlidingWindow(r: FieldReader, family: ModelFamily): number | null {
  if (family === 'mistral') return r.json.sliding_window == null ? null : r.positiveInt('sliding_window');
  if (family === 'qwen2') {
    // Qwen2 only applies its sliding_window when use_sliding_window is set (and then only to some layers).
    if (r.bool('use_sliding_window', false)) {
      throw r.unsupported('use_sliding_window', true, 'false (per-layer sliding windows are not implemented)');
    }
    const layerTypes = r.json.layer_types;
    if (Array.isArray(layerTypes) && layerTypes.some((t) => t !== 'full_attention')) {
      throw r.unsupported('layer_types', layerTypes, 'only "full_attention" layers');
    }
  }
  return null;
}

function parseEos(r: FieldReader): number[] {
  const eos = r.json.eos_token_id;
  if (eos == null) return [];
  if (Array.isArray(eos)) return eos.map((id, i) => r.tokenId(`eos_token_id[${i}]`, id));
  return [r.tokenId('eos_token_id', eos)];
}

function parseDtype(r: FieldReader): WeightDType {
  // transformers 5 writes `dtype`, 4.x wrote `torch_dtype`.
  const field = r.json.dtype != null ? 'dtype' : 'torch_dtype';
  const value = r.json[field];
  if (value == null) return 'f32';
  const dtype = lookup(DTYPES, value);
  if (!dtype) throw r.unsupported(field, value, Object.keys(DTYPES).join(', '));
  return dtype;
}
