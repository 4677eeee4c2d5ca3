/**
 * The ggml tensor types read from GGUF files (models and LoRA adapters), as bytes and as f32 values:
 * F32, F16, BF16, and the quantized blocks of kernels/block-formats.ts (a row must be whole blocks).
 */
import { GGMLQuantizationType } from '@huggingface/gguf';
import { BLOCK_FORMATS, type BlockFormat, dequantizeBlocks } from '../../kernels/block-formats.ts';
import { bf16ToF32, f16ToF32 } from '../../kernels/dtype.ts';

const BLOCKS: Partial<Record<GGMLQuantizationType, BlockFormat>> = {
  [GGMLQuantizationType.Q4_0]: BLOCK_FORMATS.Q4_0,
  [GGMLQuantizationType.Q4_1]: BLOCK_FORMATS.Q4_1,
  [GGMLQuantizationType.Q8_0]: BLOCK_FORMATS.Q8_0,
  [GGMLQuantizationType.Q4_K]: BLOCK_FORMATS.Q4_K,
  [GGMLQuantizationType.Q5_K]: BLOCK_FORMATS.Q5_K,
  [GGMLQuantizationType.Q6_K]: BLOCK_FORMATS.Q6_K,
};

export const READABLE_TYPES = 'F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K';

/** Bytes the tensor occupies, or null for a type not read here (or a row that is not whole blocks). */
export function tensorByteLength(type: GGMLQuantizationType, ne: readonly number[]): number | null {
  const elements = ne.reduce((n, d) => n * d, 1);
  switch (type) {
    case GGMLQuantizationType.F32:
      return elements * 4;
    case GGMLQuantizationType.F16:
    case GGMLQuantizationType.BF16:
      return elements * 2;
  }
  const format = BLOCKS[type];
  if (format === undefined || ne.length === 0 || ne[0] % format.values !== 0) return null;
  return (elements / format.values) * format.bytes;
}

/** Decodes little-endian tensor bytes (their length from tensorByteLength) into f32 values. */
export function decodeTensor(type: GGMLQuantizationType, bytes: Buffer): Float32Array {
  switch (type) {
    case GGMLQuantizationType.F32: {
      const out = new Float32Array(bytes.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
      return out;
    }
    case GGMLQuantizationType.F16:
    case GGMLQuantizationType.BF16: {
      const toF32 = type === GGMLQuantizationType.F16 ? f16ToF32 : bf16ToF32;
      const out = new Float32Array(bytes.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = toF32(bytes.readUInt16LE(i * 2));
      return out;
    }
  }
  const format = BLOCKS[type];
  if (format === undefined) throw new RangeError(`ggml type ${type} is not decoded here`);
  return dequantizeBlocks(format, bytes);
}
