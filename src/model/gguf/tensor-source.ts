/**
 * A GGUF model file's tensors under Hugging Face names, as the weight loader (weights.ts) reads them:
 * shapes as numpy's (ggml's ne reversed), every type dequantized to f32 on read (tensor-data.ts), and the
 * q/k rows of the "llama" arch put back in Hugging Face's order. Tensors without a Hugging Face name keep
 * their GGUF name, so the loader refuses them as unexpected.
 */
import type { ModelConfig } from '../config.ts';
import type { RawTensor } from '../safetensors.ts';
import type { TensorSource } from '../weights.ts';
import { WeightsError } from '../weights.ts';
import { type GgufFile, GgufFormatError, type GgufTensor, shownName } from './gguf-file.ts';
import { huggingFaceNames } from './llama-cpp-names.ts';
import { unpermuteRows } from './permute.ts';

/** Read into the config (RoPE factors), so not a weight. */
export const ROPE_FREQS = 'rope_freqs.weight';

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
    let data: Float32Array;
    try {
      data = await this.file.readF32(t);
    } catch (e) {
      if (e instanceof GgufFormatError)
        throw new WeightsError('weights_format_unsupported', `${this.path}: ${e.message}`);
      throw e;
    }
    const shape = this.shapeOf(name);
    if (PERMUTED_QK.has(this.arch) && shape.length === 2) {
      const c = this.config;
      if (name.endsWith('.self_attn.q_proj.weight')) data = unpermuteRows(data, shape[1], c.numHeads);
      else if (name.endsWith('.self_attn.k_proj.weight')) data = unpermuteRows(data, shape[1], c.numKvHeads);
    }
    return { dtype: 'f32', shape, data };
  }
}
