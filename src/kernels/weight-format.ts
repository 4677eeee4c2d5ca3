/**
 * Weight storage formats: how a matrix's elements are stored, what a [rows, cols] matrix costs in bytes, and
 * how to decode it to f32 or encode f32 into it. Callers name a format and ask it; how a backend packs a
 * format for its GEMMs stays the backend's business. Today f32, f16 and bf16 (one element per 4 or 2 bytes);
 * block-quantized formats (blocks of elements sharing a scale) join here with their block size.
 */
import { f32ToBf16, f32ToF16, toF32Array } from './dtype.ts';
import type { WeightDType, WeightMatrix } from './types.ts';

export interface WeightFormat {
  readonly name: WeightDType;
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
    decode: (m) => toF32Array(m.dtype, m.data.subarray(0, m.rows * m.cols)),
    encode: (values, rows, cols) => {
      if (!round) return { dtype: name, rows, cols, data: values };
      const data = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) data[i] = round(values[i]);
      return { dtype: name, rows, cols, data };
    },
  };
}

const FORMATS: Record<WeightDType, WeightFormat> = {
  f32: floatFormat('f32', 4),
  f16: floatFormat('f16', 2, f32ToF16),
  bf16: floatFormat('bf16', 2, f32ToBf16),
};

export function weightFormat(name: WeightDType): WeightFormat {
  return FORMATS[name];
}

/** A matrix in another format: decoded to f32, then encoded (the same object when the format is already it). */
export function convertWeight(m: WeightMatrix, to: WeightDType): WeightMatrix {
  if (m.dtype === to) return m;
  return weightFormat(to).encode(weightFormat(m.dtype).decode(m), m.rows, m.cols);
}
