/**
 * Weight storage formats: how a matrix's elements are stored, what a [rows, cols] matrix costs in bytes, and
 * how to decode it to f32 or encode f32 into it. Callers name a format and ask it; how a backend packs a
 * format for its GEMMs stays the backend's business. f32, f16 and bf16 (one element per 4 or 2 bytes), and
 * ggml's Q8_0 (32 elements in 34 bytes), Q4_K (256 elements in 144 bytes) and Q6_K (256 in 210), whose rows are whole blocks and
 * whose data is the blocks' bytes (Uint8Array), decoded by the GGUF dequantizers (block-formats.ts).
 */

import { encodeQ4_K, encodeQ6_K, encodeQ8_0 } from './block-encode.ts';
import { BLOCK_FORMATS, type BlockFormat, dequantizeBlocks } from './block-formats.ts';
import { f32ToBf16, f32ToF16, toF32Array } from './dtype.ts';
import { nativeEncodeQ4K } from './native/qgemm.ts';
import type { BlockDType, MatrixDType, WeightDType, WeightMatrix } from './types.ts';

export interface WeightFormat {
  readonly name: MatrixDType;
  /** Elements per block and the bytes one block takes (1 element per block for the float formats). */
  readonly blockElements: number;
  readonly blockBytes: number;
  /** Bytes of a [rows, cols] matrix (rows are whole blocks). */
  bytes(rows: number, cols: number): number;
  /** The matrix's values in f32 (reference kernels, merging, checks). */
  decode(m: WeightMatrix): Float32Array;
  /** f32 values → a [rows, cols] matrix in this format (rounding to nearest even for 16-bit formats). */
  encode(values: Float32Array, rows: number, cols: number): WeightMatrix;
}

function floatFormat(name: WeightDType, bytesPerElement: number, round?: (v: number) => number): WeightFormat {
  return {
    name,
    blockElements: 1,
    blockBytes: bytesPerElement,
    bytes: (rows, cols) => rows * cols * bytesPerElement,
    decode: (m) => toF32Array(m.dtype as 'f32' | 'f16' | 'bf16', m.data.subarray(0, m.rows * m.cols) as Float32Array),
    encode: (values, rows, cols) => {
      if (!round) return { dtype: name, rows, cols, data: values };
      const data = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) data[i] = round(values[i]);
      return { dtype: name, rows, cols, data };
    },
  };
}

function blockFormat(name: BlockDType, block: BlockFormat, encode: (v: Float32Array) => Uint8Array): WeightFormat {
  const bytes = (rows: number, cols: number) => rows * (cols / block.values) * block.bytes;
  const check = (rows: number, cols: number) => {
    if (cols % block.values !== 0)
      throw new RangeError(`${name}: a row of ${cols} values is not whole blocks of ${block.values}`);
    return bytes(rows, cols);
  };
  return {
    name,
    blockElements: block.values,
    blockBytes: block.bytes,
    bytes,
    decode: (m) =>
      m.parts
        ? decodeParts(m.parts)
        : dequantizeBlocks(block, (m.data as Uint8Array).subarray(0, check(m.rows, m.cols))),
    encode: (values, rows, cols) => {
      check(rows, cols);
      return { dtype: name, rows, cols, data: encode(values.subarray(0, rows * cols)) };
    },
  };
}

/** A stacked matrix's values: each part decoded by its own format (stacked-weight.ts). */
function decodeParts(parts: readonly WeightMatrix[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.rows * p.cols, 0));
  let at = 0;
  for (const p of parts) {
    out.set(weightFormat(p.dtype).decode(p), at);
    at += p.rows * p.cols;
  }
  return out;
}

const FORMATS: Record<MatrixDType, WeightFormat> = {
  f32: floatFormat('f32', 4),
  f16: floatFormat('f16', 2, f32ToF16),
  bf16: floatFormat('bf16', 2, f32ToBf16),
  q8_0: blockFormat('q8_0', BLOCK_FORMATS.Q8_0, encodeQ8_0),
  // The same bytes either way; the addon's encoder where it is built (--quantize q4_k of a 1B model: 13 minutes in
  // TypeScript).
  q4_k: blockFormat('q4_k', BLOCK_FORMATS.Q4_K, (v) => nativeEncodeQ4K(v) ?? encodeQ4_K(v)),
  q6_k: blockFormat('q6_k', BLOCK_FORMATS.Q6_K, encodeQ6_K),
};

/** Whether the format keeps blocks of quantized values (rows must be whole blocks; data is a Uint8Array). */
export function isBlockDType(name: MatrixDType): name is BlockDType {
  return name === 'q8_0' || name === 'q4_k' || name === 'q6_k';
}

/** Whether a [rows, cols] matrix can be stored in `name` (rows of whole blocks). */
export function fitsFormat(name: MatrixDType, cols: number): boolean {
  return cols % FORMATS[name].blockElements === 0;
}

export function weightFormat(name: MatrixDType): WeightFormat {
  return FORMATS[name];
}

/**
 * A matrix in another format: decoded to f32, then encoded (the same object when the format is already it;
 * a stacked matrix's parts are always decoded, the CUDA backend's path for blocks).
 */
export function convertWeight(m: WeightMatrix, to: MatrixDType): WeightMatrix {
  if (m.dtype === to && !m.parts) return m;
  return weightFormat(to).encode(weightFormat(m.dtype).decode(m), m.rows, m.cols);
}
