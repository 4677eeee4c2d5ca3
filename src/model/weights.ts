/**
 * The base model's weights under Hugging Face names, checked against the config and loaded into the
 * kernels' types. Matrices keep one storage dtype (the checkpoint's, or the one asked for); norms and
 * biases become f32.
 *
 * Names, as the family's spec (src/model/spec/) lists them; for Llama:
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
 * Phi-3 stores self_attn.qkv_proj [(Hq + 2·Hkv)·D, H] and mlp.gate_up_proj [2·I, H]; Gemma adds
 * pre/post_feedforward_layernorm; Qwen3 and Gemma 3 add self_attn.{q,k}_norm [D].
 */

import { toF32Array } from '../kernels/dtype.ts';
import type { BlockDType, MatrixDType, WeightDType, WeightMatrix } from '../kernels/types.ts';
import { convertWeight, fitsFormat } from '../kernels/weight-format.ts';
import type { ModelConfig } from './config.ts';
import { type ModuleKind, moduleShape } from './modules.ts';
import type { RawTensor } from './safetensors.ts';
import { specOf } from './spec/index.ts';

export interface LayerWeights {
  /** The projections as the checkpoint stores them, by name (the spec's modules). */
  linear: Partial<Record<ModuleKind, WeightMatrix>>;
  /** Biases of the projections that have one. */
  bias: Partial<Record<ModuleKind, Float32Array>>;
  /** Norm weights by name under the layer ('input_layernorm', 'self_attn.q_norm', …), as stored. */
  norms: Record<string, Float32Array>;
}

export interface ModelWeights {
  embedding: WeightMatrix; // [V, H]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [H]
  lmHead: WeightMatrix; // [V, H]; the embedding object itself when tied (both in blocks, or both float)
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig; // dtype = the matrices' dtype as loaded
  weights: ModelWeights;
}

export interface LoadWeightsOptions {
  /** Store every matrix in this dtype (converted on load; f32 → bf16/f16 rounds to nearest even). */
  dtype?: WeightDType;
  /**
   * Projection matrices (the spec's modules, not the embedding or lm_head) in these quantized blocks for the
   * quantized GEMM (--quantize); a projection whose rows are not whole blocks keeps `dtype`.
   */
  quantize?: BlockDType;
  /** Projections a source stores as Q8_0 / Q4_K / Q6_K blocks (GGUF) stay blocks (default true). */
  keepBlocks?: boolean;
  /**
   * lm_head in blocks too (default true, as llama.cpp's Q8_0 files keep output.weight in Q8_0): with `quantize`
   * the head is quantized like the projections, and a GGUF head (output.weight, or token_embd when tied) stored
   * as Q8_0 / Q4_K / Q6_K stays blocks (with keepBlocks). On a tied model the embedding is then that same block
   * matrix (rows dequantized at lookup); an untied model's embedding stays float. false keeps the head float.
   */
  quantizeLmHead?: boolean;
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
  /** The matrix as the quantized blocks it is stored in, when the quantized GEMM reads them (GGUF); else null. */
  readBlocks?(name: string): Promise<WeightMatrix | null>;
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

const HINT = 'hint: does config.json match the weights?';
const FLOAT_DTYPES: Record<string, WeightDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
/** Buffers some checkpoints carry that the forward pass recomputes. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/** Norm tensors of a layer, by name under model.layers.{i}., with their length. */
export function layerNorms(config: ModelConfig): { name: string; size: number }[] {
  const spec = specOf(config.family);
  const norms = Object.values(spec.norms).map((name) => ({ name, size: config.hiddenSize }));
  if (spec.qkNorm) {
    norms.push({ name: 'self_attn.q_norm', size: config.headDim }, { name: 'self_attn.k_norm', size: config.headDim });
  }
  return norms;
}

export function expectedTensors(config: ModelConfig): ExpectedTensor[] {
  const { hiddenSize: H, vocabSize: V } = config;
  const spec = specOf(config.family);
  const biased = new Set(spec.biases(config));
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    for (const norm of layerNorms(config)) out.push({ name: `${p}.${norm.name}.weight`, shape: [norm.size] });
    for (const m of spec.modules) {
      const { inFeatures, outFeatures } = moduleShape(config, m.kind);
      out.push({ name: `${p}.${m.parent}.${m.kind}.weight`, shape: [outFeatures, inFeatures] });
      if (biased.has(m.kind)) out.push({ name: `${p}.${m.parent}.${m.kind}.bias`, shape: [outFeatures] });
    }
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

export function convertMatrix(raw: RawTensor, dtype: MatrixDType): WeightMatrix {
  const [rows, cols] = raw.shape;
  return convertWeight({ dtype: raw.dtype, rows, cols, data: raw.data }, dtype);
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
  const projection = async (name: string) => {
    const blocks = options.keepBlocks === false ? null : ((await source.readBlocks?.(name)) ?? null);
    if (blocks) return blocks;
    const raw = await source.readRaw(name);
    const q = options.quantize;
    return convertMatrix(raw, q && fitsFormat(q, raw.shape[1]) ? q : dtype);
  };
  const vector = async (name: string) => {
    const raw = await source.readRaw(name);
    return toF32Array(raw.dtype, raw.data);
  };

  // lm_head in blocks (quantizeLmHead): on a tied model one block copy serves the head and the row lookups.
  const headBlocks = async (name: string): Promise<WeightMatrix | null> => {
    if (options.quantizeLmHead === false) return null;
    const blocks = options.keepBlocks === false ? null : ((await source.readBlocks?.(name)) ?? null);
    if (blocks) return blocks;
    const q = options.quantize;
    return q && fitsFormat(q, config.hiddenSize) ? convertMatrix(await source.readRaw(name), q) : null;
  };

  const total = config.numLayers + 2;
  const embedName = 'model.embed_tokens.weight';
  const embedding = (config.tieWordEmbeddings ? await headBlocks(embedName) : null) ?? (await matrix(embedName));
  options.onProgress?.(1, total);
  const spec = specOf(config.family);
  const biased = new Set(spec.biases(config));
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    const layer: LayerWeights = { linear: {}, bias: {}, norms: {} };
    for (const norm of layerNorms(config)) layer.norms[norm.name] = await vector(`${p}.${norm.name}.weight`);
    for (const m of spec.modules) {
      layer.linear[m.kind] = await projection(`${p}.${m.parent}.${m.kind}.weight`);
      if (biased.has(m.kind)) layer.bias[m.kind] = await vector(`${p}.${m.parent}.${m.kind}.bias`);
    }
    layers.push(layer);
    options.onProgress?.(i + 2, total);
  }
  const finalNorm = await vector('model.norm.weight');
  const lmHead = config.tieWordEmbeddings
    ? embedding
    : ((await headBlocks('lm_head.weight')) ?? (await matrix('lm_head.weight')));
  options.onProgress?.(total, total);
  return { weights: { embedding, layers, finalNorm, lmHead }, dtype };
}
