/**
 * A GGUF model file's tensors under Hugging Face names, as the weight loader (weights.ts) reads them:
 * shapes as numpy's (ggml's ne reversed), every type dequantized to f32 on read (tensor-data.ts), and the
 * q/k rows of the "llama" arch put back in Hugging Face's order. Tensors without a Hugging Face name keep
 * their GGUF name, so the loader refuses them as unexpected. Q8_0, Q4_K and Q6_K matrices can also be read as
 * their blocks (readBlocks), which the quantized GEMM runs as they are.
 */
import { GGMLQuantizationType } from '@huggingface/gguf';
import type { BlockDType, WeightMatrix } from '../../kernels/types.ts';
import { weightFormat } from '../../kernels/weight-format.ts';
import type { ModelConfig } from '../config.ts';
import type { RawTensor } from '../safetensors.ts';
import type { TensorSource } from '../weights.ts';
import { WeightsError } from '../weights.ts';
import { type GgufFile, GgufFormatError, type GgufTensor, shownName } from './gguf-file.ts';
import { huggingFaceNames } from './llama-cpp-names.ts';
import { unpermuteRows } from './permute.ts';

/** Read into the config (RoPE factors), so not a weight. */
export const ROPE_FREQS = 'rope_freqs.weight';

/** ggml types the quantized GEMM reads as they are stored. */
const KEPT_BLOCKS: Partial<Record<GGMLQuantizationType, BlockDType>> = {
  [GGMLQuantizationType.Q8_0]: 'q8_0',
  [GGMLQuantizationType.Q4_K]: 'q4_k',
  [GGMLQuantizationType.Q6_K]: 'q6_k',
};

/** Archs whose converter permuted q/k rows (convert_hf_to_gguf.py's LlamaModel). */
const PERMUTED_QK = new Set(['llama']);

export class GgufTensorSource implements TensorSource {
  private readonly byName = new Map<string, GgufTensor>();

  constructor(
    /** The file's name, for messages (never a server path). */
    readonly path: string,
    private readonly file: GgufFile,
    private readonly config: ModelConfig,
    private readonly arch: string,
  ) {
    const names = huggingFaceNames(config.family, config.numLayers);
    for (const t of file.tensors.values()) {
      if (t.name !== ROPE_FREQS) this.byName.set(names.get(t.name) ?? shownName(t.name), t);
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
  fileOf(name: string): string | undefined {
    return this.byName.has(name) ? this.path : undefined;
  }
  private tensor(name: string): GgufTensor {
    const t = this.byName.get(name);
    if (!t) throw new WeightsError('weights_missing_tensor', `${this.path}: no tensor for '${name}'`);
    return t;
  }
  shapeOf(name: string): number[] {
    return [...this.tensor(name).ne].reverse();
  }
  /** Every type is dequantized to f32 on read. */
  dtypeOf(name: string): string {
    this.tensor(name);
    return 'F32';
  }
  async readRaw(name: string): Promise<RawTensor> {
    const t = this.tensor(name);
    const shape = this.shapeOf(name);
    const data = this.unpermuted(name, await this.read(() => this.file.readF32(t)), shape[1]);
    return { dtype: 'f32', shape, data };
  }

  /** A Q8_0 / Q4_K / Q6_K matrix as its blocks [rows, cols] (rows un-permuted as readRaw's); null for other types. */
  async readBlocks(name: string): Promise<WeightMatrix | null> {
    const t = this.tensor(name);
    const dtype = KEPT_BLOCKS[t.type];
    const shape = this.shapeOf(name);
    if (dtype === undefined || shape.length !== 2) return null;
    const [rows, cols] = shape;
    const buf = await this.read(() => this.file.readBytes(t));
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    const data = this.unpermuted(name, bytes, weightFormat(dtype).bytes(1, cols));
    return { dtype, rows, cols, data };
  }

  private async read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (e instanceof GgufFormatError)
        throw new WeightsError('weights_format_unsupported', `${this.path}: ${e.message}`);
      throw e;
    }
  }

  /** q/k rows back in Hugging Face's order; `rowLength` in elements of `data` (values or bytes). */
  private unpermuted<T extends Float32Array | Uint8Array>(name: string, data: T, rowLength: number): T {
    if (!PERMUTED_QK.has(this.arch) || this.shapeOf(name).length !== 2) return data;
    const c = this.config;
    if (name.endsWith('.self_attn.q_proj.weight')) return unpermuteRows(data, rowLength, c.numHeads);
    if (name.endsWith('.self_attn.k_proj.weight')) return unpermuteRows(data, rowLength, c.numKvHeads);
    return data;
  }
}
