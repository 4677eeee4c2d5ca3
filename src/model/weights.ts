/**
 * The base model's weights under Hugging Face names, checked against the config and loaded into the
 * kernels' types. Matrices keep one storage dtype (the checkpoint's, or the one asked for); norms and
 * biases become f32.
 *
 * Names (HF Llama/Mistral/Qwen2):
 *   model.embed_tokens.weight                       [V, H]
 *   model.layers.{i}.input_layernorm.weight         [H]
 *   model.layers.{i}.self_attn.q_proj.weight        [Hq·D, H]   (+ .bias [Hq·D] with attention biases)
 *   model.layers.{i}.self_attn.{k,v}_proj.weight    [Hkv·D, H]  (+ .bias [Hkv·D])
 *   model.layers.{i}.self_attn.o_proj.weight        [H, Hq·D]   (+ .bias [H] for Llama's attention_bias)
 *   model.layers.{i}.post_attention_layernorm.weight [H]
 *   model.layers.{i}.mlp.{gate,up}_proj.weight      [I, H]
 *   model.layers.{i}.mlp.down_proj.weight           [H, I]
 *   model.norm.weight                               [H]
 *   lm_head.weight                                  [V, H]      (absent when tie_word_embeddings)
 */

import { f32ToBf16, f32ToF16, toF32Array } from '../kernels/dtype.ts';
import type { WeightDType, WeightMatrix } from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import { moduleShape } from './modules.ts';
import type { RawTensor } from './safetensors.ts';

export interface LayerWeights {
  inputNorm: Float32Array; // [H]
  postAttentionNorm: Float32Array; // [H]
  q: WeightMatrix; // [Hq·D, H]
  k: WeightMatrix; // [Hkv·D, H]
  v: WeightMatrix; // [Hkv·D, H]
  o: WeightMatrix; // [H, Hq·D]
  qBias: Float32Array | null;
  kBias: Float32Array | null;
  vBias: Float32Array | null;
  oBias: Float32Array | null;
  gate: WeightMatrix; // [I, H]
  up: WeightMatrix; // [I, H]
  down: WeightMatrix; // [H, I]
}

export interface ModelWeights {
  embedding: WeightMatrix; // [V, H]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [H]
  lmHead: WeightMatrix; // [V, H]; the embedding object itself when tied
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig; // dtype = the matrices' dtype as loaded
  weights: ModelWeights;
}

export interface LoadWeightsOptions {
  /** Store every matrix in this dtype (converted on load; f32 → bf16/f16 rounds to nearest even). */
  dtype?: WeightDType;
  /** Called as parts are read: the embedding, each layer, the head (for progress bars). */
  onProgress?: (done: number, total: number) => void;
}

export type WeightsErrorCode =
  | 'weights_not_found'
  | 'weights_format_unsupported'
  | 'weights_index_invalid'
  | 'weights_missing_tensor'
  | 'weights_shape_mismatch'
  | 'weights_dtype_unsupported'
  | 'weights_unexpected_tensor';

export class WeightsError extends Error {
  constructor(
    readonly code: WeightsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'WeightsError';
  }
}

/** Where tensors come from: one safetensors file or a sharded set (see model-dir.ts). */
export interface TensorSource {
  /** The file that names every tensor: model.safetensors, or the shards' index. */
  readonly path: string;
  names(): string[];
  /** The file holding a tensor (for messages), or undefined when absent. */
  fileOf(name: string): string | undefined;
  shapeOf(name: string): number[];
  dtypeOf(name: string): string; // as in the safetensors header: F32, F16, BF16, ...
  readRaw(name: string): Promise<RawTensor>;
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

const HINT = 'hint: does config.json match the weights?';
const FLOAT_DTYPES: Record<string, WeightDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
/** Buffers some checkpoints carry that the forward pass recomputes. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/** Llama's attention_bias also adds an o_proj bias; Qwen2 biases q/k/v only. */
function hasOutputBias(config: ModelConfig): boolean {
  return config.family === 'llama' && config.attentionBias;
}

export function expectedTensors(config: ModelConfig): ExpectedTensor[] {
  const { hiddenSize: H, vocabSize: V } = config;
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  const linear = (prefix: string, kind: Parameters<typeof moduleShape>[1], bias: boolean) => {
    const { inFeatures, outFeatures } = moduleShape(config, kind);
    out.push({ name: `${prefix}.${kind}.weight`, shape: [outFeatures, inFeatures] });
    if (bias) out.push({ name: `${prefix}.${kind}.bias`, shape: [outFeatures] });
  };
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.push({ name: `${p}.input_layernorm.weight`, shape: [H] });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [H] });
    for (const kind of ['q_proj', 'k_proj', 'v_proj'] as const) linear(`${p}.self_attn`, kind, config.attentionBias);
    linear(`${p}.self_attn`, 'o_proj', hasOutputBias(config));
    for (const kind of ['gate_proj', 'up_proj', 'down_proj'] as const) linear(`${p}.mlp`, kind, config.mlpBias);
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (!config.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [V, H] });
  return out;
}

/** Every expected tensor present with its shape and a float dtype, and nothing the model would ignore. */
export function checkTensors(config: ModelConfig, source: TensorSource, configFile: string): void {
  const expected = expectedTensors(config);
  for (const t of expected) {
    const file = source.fileOf(t.name);
    if (file === undefined) {
      const tieHint =
        t.name === 'lm_head.weight'
          ? ' (if the model ties lm_head to the embeddings, set tie_word_embeddings: true)'
          : '';
      throw new WeightsError(
        'weights_missing_tensor',
        `${source.path}: tensor '${t.name}' [${t.shape.join(', ')}] is missing${tieHint}; ${configFile} asks for it (${HINT})`,
      );
    }
    const shape = source.shapeOf(t.name);
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new WeightsError(
        'weights_shape_mismatch',
        `${file}: tensor '${t.name}' has shape [${shape.join(', ')}], expected [${t.shape.join(', ')}] from ${configFile} (${HINT})`,
      );
    }
    const dtype = source.dtypeOf(t.name);
    if (!Object.hasOwn(FLOAT_DTYPES, dtype)) {
      throw new WeightsError(
        'weights_dtype_unsupported',
        `${file}: tensor '${t.name}' is ${dtype}; supported: F32, F16, BF16 (quantized checkpoints are not supported)`,
      );
    }
  }
  const known = new Set(expected.map((t) => t.name));
  const unexpected = source
    .names()
    .filter((n) => !known.has(n) && !IGNORED.test(n) && !(config.tieWordEmbeddings && n === 'lm_head.weight'));
  if (unexpected.length > 0) {
    const shown =
      unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, … (${unexpected.length} in all)` : '');
    throw new WeightsError(
      'weights_unexpected_tensor',
      `${source.fileOf(unexpected[0])}: unexpected tensor(s) ${shown}: ${configFile} describes a model without them, ` +
        `so they would be ignored and the output would be wrong (${HINT})`,
    );
  }
}

export function convertMatrix(raw: RawTensor, dtype: WeightDType): WeightMatrix {
  const [rows, cols] = raw.shape;
  if (raw.dtype === dtype) return { dtype, rows, cols, data: raw.data };
  const f32 = toF32Array(raw.dtype, raw.data);
  if (dtype === 'f32') return { dtype, rows, cols, data: f32 };
  const round = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const data = new Uint16Array(f32.length);
  for (let i = 0; i < f32.length; i++) data[i] = round(f32[i]);
  return { dtype, rows, cols, data };
}

/**
 * Checks then reads every tensor. Matrices are stored in options.dtype, else in the dtype of the
 * checkpoint's embedding (config.json's torch_dtype is sometimes wrong about the files).
 */
export async function loadWeights(
  config: ModelConfig,
  source: TensorSource,
  configFile: string,
  options: LoadWeightsOptions = {},
): Promise<{ weights: ModelWeights; dtype: WeightDType }> {
  checkTensors(config, source, configFile);
  const dtype = options.dtype ?? FLOAT_DTYPES[source.dtypeOf('model.embed_tokens.weight')];
  const matrix = async (name: string) => convertMatrix(await source.readRaw(name), dtype);
  const vector = async (name: string) => {
    const raw = await source.readRaw(name);
    return toF32Array(raw.dtype, raw.data);
  };
  const optionalVector = (name: string, present: boolean) => (present ? vector(name) : Promise.resolve(null));

  const total = config.numLayers + 2;
  const embedding = await matrix('model.embed_tokens.weight');
  options.onProgress?.(1, total);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const attn = `model.layers.${i}.self_attn`;
    const mlp = `model.layers.${i}.mlp`;
    layers.push({
      inputNorm: await vector(`model.layers.${i}.input_layernorm.weight`),
      postAttentionNorm: await vector(`model.layers.${i}.post_attention_layernorm.weight`),
      q: await matrix(`${attn}.q_proj.weight`),
      k: await matrix(`${attn}.k_proj.weight`),
      v: await matrix(`${attn}.v_proj.weight`),
      o: await matrix(`${attn}.o_proj.weight`),
      qBias: await optionalVector(`${attn}.q_proj.bias`, config.attentionBias),
      kBias: await optionalVector(`${attn}.k_proj.bias`, config.attentionBias),
      vBias: await optionalVector(`${attn}.v_proj.bias`, config.attentionBias),
      oBias: await optionalVector(`${attn}.o_proj.bias`, hasOutputBias(config)),
      gate: await matrix(`${mlp}.gate_proj.weight`),
      up: await matrix(`${mlp}.up_proj.weight`),
      down: await matrix(`${mlp}.down_proj.weight`),
    });
    options.onProgress?.(i + 2, total);
  }
  const finalNorm = await vector('model.norm.weight');
  const lmHead = config.tieWordEmbeddings ? embedding : await matrix('lm_head.weight');
  options.onProgress?.(total, total);
  return { weights: { embedding, layers, finalNorm, lmHead }, dtype };
}
