/**
 * The ggml tensor types a LoRA file may use (convert_lora_to_gguf.py --outtype f32 | f16 | bf16 | q8_0), as
 * bytes and as f32 values. Q8_0 (ggml-common.h, block_q8_0): blocks of 32 values along a row, each an f16
 * scale d then 32 int8 q; value = d · q. Q8_0 files keep rows shorter than a block (lora_b of rank < 32) in F16.
 */
import { GGMLQuantizationType } from '@huggingface/gguf';
import { bf16ToF32, f16ToF32 } from '../../../kernels/dtype.ts';

const Q8_0_BLOCK = 32;
const Q8_0_BYTES = 2 + Q8_0_BLOCK;

/** Bytes the tensor occupies, or null for a type not read here (or a Q8_0 row that is not whole blocks). */
export function tensorByteLength(type: GGMLQuantizationType, ne: readonly number[]): number | null {
  const elements = ne.reduce((n, d) => n * d, 1);
  switch (type) {
    case GGMLQuantizationType.F32:
      return elements * 4;
    case GGMLQuantizationType.F16:
    case GGMLQuantizationType.BF16:
      return elements * 2;
    case GGMLQuantizationType.Q8_0:
      if (ne.length === 0 || ne[0] % Q8_0_BLOCK !== 0) return null;
      return (elements / Q8_0_BLOCK) * Q8_0_BYTES;
    default:
      return null;
  }
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
    case GGMLQuantizationType.Q8_0: {
      const blocks = bytes.length / Q8_0_BYTES;
      const out = new Float32Array(blocks * Q8_0_BLOCK);
      for (let b = 0; b < blocks; b++) {
        const d = f16ToF32(bytes.readUInt16LE(b * Q8_0_BYTES));
        for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * bytes.readInt8(b * Q8_0_BYTES + 2 + j);
      }
      return out;
    }
    default:
      throw new RangeError(`ggml type ${type} is not decoded here`);
  }
}
