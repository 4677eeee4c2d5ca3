/**
 * config.json (Hugging Face transformers 4.x or 5.x layout) → ModelConfig.
 * Anything the forward pass would get wrong is refused with an error that names the file, the field,
 * the value found and what is supported, rather than silently ignored.
 *
 *   const config = parseModelConfig(JSON.parse(text), '/models/llama/config.json');
 */
import type { WeightDType } from '../kernels/types.ts';
import type { LayerType, ModelConfig, RopeParams, RopeScaling } from './config.ts';
import { MODEL_SPECS, type ModelSpec } from './spec/index.ts';

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

const DTYPES: Record<string, WeightDType> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };
const ACTIVATIONS: Record<string, ModelConfig['hiddenActivation']> = {
  silu: 'silu',
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
};
const LAYER_TYPES: Record<string, LayerType> = { full_attention: 'full', sliding_attention: 'sliding' };

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
  const spec = parseSpec(r);
  const family = spec.family;
  refuseUnsupportedFeatures(r, spec);

  const hiddenSize = r.positiveInt('hidden_size');
  const numHeads = r.positiveInt('num_attention_heads');
  const numKvHeads = r.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw r.invalid('num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  }
  const numLayers = r.positiveInt('num_hidden_layers');
  const headDim = parseHeadDim(r, hiddenSize, numHeads);
  const maxPositionEmbeddings = r.positiveInt('max_position_embeddings', spec.defaults.maxPositionEmbeddings);
  const { rope, localRope } = parseRopes(r);
  const { layerTypes, slidingWindow } = parseLayerTypes(r, spec, numLayers);
  const gemma = spec.scaleEmbeddings;

  return {
    family,
    architecture: spec.architecture,
    vocabSize: r.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: r.positiveInt('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    localRope,
    maxPositionEmbeddings,
    tieWordEmbeddings: r.bool('tie_word_embeddings', spec.defaults.tieWordEmbeddings),
    attentionBias:
      spec.attentionBias === 'always' || (spec.attentionBias === 'flag' && r.bool('attention_bias', false)),
    mlpBias: false,
    slidingWindow,
    layerTypes,
    hiddenActivation: parseActivation(r, spec),
    attentionScale: gemma ? r.positiveNumber('query_pre_attn_scalar', 256) ** -0.5 : headDim ** -0.5,
    attnLogitSoftcap: spec.attnSoftcap
      ? optionalPositive(r, 'attn_logit_softcapping', spec.defaults.attnLogitSoftcap)
      : null,
    finalLogitSoftcap: gemma ? optionalPositive(r, 'final_logit_softcapping', spec.defaults.finalLogitSoftcap) : null,
    bosTokenId: r.json.bos_token_id == null ? null : r.tokenId('bos_token_id', r.json.bos_token_id),
    eosTokenIds: parseEos(r),
    dtype: parseDtype(r),
  };
}

/** A number field that may be null (off); missing: the family's default. */
function optionalPositive(r: FieldReader, field: string, fallback: number | null): number | null {
  if (!Object.hasOwn(r.json, field)) return fallback;
  if (r.json[field] === null) return null;
  return r.positiveNumber(field, 1);
}

function parseSpec(r: FieldReader): ModelSpec {
  const supported = MODEL_SPECS.map((s) => s.architecture).join(', ');
  const archs = r.json.architectures;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0) throw r.invalid('architectures', archs, 'a list of class names');
    if (archs.length > 1) throw r.unsupported('architectures', archs, `exactly one of ${supported}`);
    const spec = MODEL_SPECS.find((s) => s.architecture === archs[0]);
    if (!spec) throw r.unsupported('architectures', archs, supported);
    return spec;
  }
  // transformers 5 omits `architectures` from configs built by hand; model_type still says the family.
  const spec = MODEL_SPECS.find((s) => s.modelType === r.json.model_type);
  if (!spec) {
    throw r.unsupported(
      'model_type',
      r.json.model_type,
      `${MODEL_SPECS.map((s) => s.modelType).join(', ')} (or architectures: ${supported})`,
    );
  }
  return spec;
}

function refuseUnsupportedFeatures(r: FieldReader, spec: ModelSpec) {
  if (r.bool('mlp_bias', false)) throw r.unsupported('mlp_bias', true, 'false (MLP biases are not implemented)');
  if (r.json.quantization_config != null) {
    throw r.unsupported('quantization_config', r.json.quantization_config, 'none (unquantized f32/f16/bf16 weights)');
  }
  if (spec.family === 'gemma3' && r.bool('use_bidirectional_attention', false)) {
    throw r.unsupported('use_bidirectional_attention', true, 'false (causal decoding only)');
  }
}

function parseActivation(r: FieldReader, spec: ModelSpec): ModelConfig['hiddenActivation'] {
  // Gemma names it hidden_activation (and keeps a hidden_act its MLP ignores).
  const field = r.json.hidden_activation != null ? 'hidden_activation' : 'hidden_act';
  const value = r.json[field] ?? (spec.scaleEmbeddings ? 'gelu_pytorch_tanh' : 'silu');
  const activation = lookup(ACTIVATIONS, value);
  if (!activation) {
    throw r.unsupported(
      field,
      value,
      Object.keys(ACTIVATIONS)
        .map((a) => `"${a}"`)
        .join(', '),
    );
  }
  return activation;
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

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * transformers 4.x: rope_theta + rope_scaling ({rope_type | type, ...} or null).
 * transformers 5.x: rope_parameters {rope_theta, rope_type, ...}, or one per layer type
 * ({full_attention: {...}, sliding_attention: {...}}: Gemma 3, whose local layers have their own base).
 */
function parseRopes(r: FieldReader): { rope: RopeParams; localRope: RopeParams | null } {
  const v5 = r.json.rope_parameters;
  const field = v5 != null ? 'rope_parameters' : 'rope_scaling';
  const params = v5 ?? r.json.rope_scaling ?? null;
  if (params !== null && !isObject(params)) throw r.invalid(field, params, 'an object or null');
  const p = (params ?? {}) as Json;
  if (isObject(p.full_attention) || isObject(p.sliding_attention)) {
    const full = isObject(p.full_attention) ? p.full_attention : {};
    const sliding = isObject(p.sliding_attention) ? p.sliding_attention : {};
    return {
      rope: parseRope(r, full, `${field}.full_attention`, r.positiveNumber('rope_theta', 1_000_000)),
      localRope: parseRope(r, sliding, `${field}.sliding_attention`, r.positiveNumber('rope_local_base_freq', 10000)),
    };
  }
  const rope = parseRope(r, p, field, r.positiveNumber('rope_theta', 10000));
  const localRope =
    r.json.rope_local_base_freq == null ? null : { theta: r.positiveNumber('rope_local_base_freq', 1), scaling: null };
  return { rope, localRope };
}

function parseRope(r: FieldReader, p: Json, field: string, fallbackTheta: number): RopeParams {
  const theta = r.positiveNumber('rope_theta', fallbackTheta, p, `${field}.rope_theta`);
  const typeKey = p.rope_type !== undefined ? 'rope_type' : 'type';
  const type = p[typeKey] ?? 'default';
  const partial = p.partial_rotary_factor ?? r.json.partial_rotary_factor ?? 1;
  if (partial !== 1) throw r.unsupported(`${field}.partial_rotary_factor`, partial, '1 (RoPE over the whole head)');
  if (type === 'default') return { theta, scaling: null };
  const num = (key: string) => {
    const value = p[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw r.invalid(`${field}.${key}`, value, `a positive number (required by ${type} RoPE)`);
    }
    return value;
  };
  if (type === 'linear') return { theta, scaling: { type: 'linear', factor: num('factor') } };
  if (type !== 'llama3') {
    throw r.unsupported(`${field}.${typeKey}`, type, '"default" (or no scaling), "linear" and "llama3"');
  }
  const lowFreqFactor = num('low_freq_factor');
  const highFreqFactor = num('high_freq_factor');
  if (highFreqFactor <= lowFreqFactor) {
    throw r.invalid(`${field}.high_freq_factor`, highFreqFactor, `a value above low_freq_factor (${lowFreqFactor})`);
  }
  const scaling: RopeScaling = {
    type: 'llama3',
    factor: num('factor'),
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
  };
  return { theta, scaling };
}

/**
 * Which layers attend through the sliding window: config.json's layer_types when given, else the family's
 * rule (Gemma 2 alternates, Gemma 3 has one full layer per sliding_window_pattern, Mistral and Phi-3 slide
 * everywhere when sliding_window is set). Qwen's per-layer windows (use_sliding_window) are refused.
 */
function parseLayerTypes(
  r: FieldReader,
  spec: ModelSpec,
  numLayers: number,
): { layerTypes: LayerType[]; slidingWindow: number | null } {
  const family = spec.family;
  const qwen = family === 'qwen2' || family === 'qwen3';
  if (qwen && r.bool('use_sliding_window', false)) {
    throw r.unsupported('use_sliding_window', true, "false (Qwen's per-layer sliding windows are not implemented)");
  }
  const given = r.json.layer_types;
  let layerTypes: LayerType[];
  if (given != null) {
    if (!Array.isArray(given) || given.length !== numLayers) {
      throw r.invalid('layer_types', given, `a list of ${numLayers} layer types (one per layer)`);
    }
    layerTypes = given.map((t, i) => {
      const type = lookup(LAYER_TYPES, t);
      if (!type) throw r.unsupported(`layer_types[${i}]`, t, '"full_attention", "sliding_attention"');
      return type;
    });
  } else if (typeof spec.slidingLayers === 'object') {
    const { fullEvery, patternField } = spec.slidingLayers;
    const n = patternField ? r.positiveInt(patternField, fullEvery) : fullEvery;
    layerTypes = Array.from({ length: numLayers }, (_, i) => ((i + 1) % n ? 'sliding' : 'full'));
  } else {
    const slides = spec.slidingLayers === 'all' && r.json.sliding_window != null;
    layerTypes = Array.from({ length: numLayers }, () => (slides ? 'sliding' : 'full'));
  }
  if (qwen && layerTypes.some((t) => t !== 'full')) {
    throw r.unsupported('layer_types', given, 'only "full_attention" layers');
  }
  // A sliding layer without a window attends to everything (transformers passes sliding_window=None).
  if (!layerTypes.includes('sliding') || r.json.sliding_window == null) {
    return { layerTypes: layerTypes.map(() => 'full'), slidingWindow: null };
  }
  return { layerTypes, slidingWindow: r.positiveInt('sliding_window') };
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
