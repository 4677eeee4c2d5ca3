/**
 * ggml's quantized blocks, dequantized to f32 in plain TypeScript. Block layouts from ggml-common.h
 * (block_q4_0 …), arithmetic in ggml-quants.c's dequantize_row_* order, every product rounded to f32 as
 * there, so the values equal gguf-py's gguf.quants.dequantize bit for bit (test/model/gguf-model.test.ts).
 * The GGUF loader dequantizes with them; weight-format.ts decodes q8_0 / q4_k / q6_k weights with them (the
 * quantized GEMM's reference, src/kernels/reference/qgemm.ts, reads the blocks themselves).
 *
 *   Q8_0  32 values,  34 B: d f16 · q int8[32]                          x = d·q
 *   Q4_0  32 values,  18 B: d f16 · qs[16] (low nibbles 0-15, high 16-31)  x = d·(q − 8)
 *   Q4_1  32 values,  20 B: d f16, m f16 · qs[16]                        x = d·q + m
 *   Q4_K 256 values, 144 B: d, dmin f16 · scales[12] (8 × 6-bit scale, min) · qs[128]
 *                           per 32 values: x = (d·sc)·q − dmin·min
 *   Q5_K 256 values, 176 B: as Q4_K plus qh[32], the fifth bit of each q
 *   Q6_K 256 values, 210 B: ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16], d f16
 *                           per 16 values: x = (d·sc)·(q − 32)
 */
import { f16ToF32 } from './dtype.ts';

const f = Math.fround;

export interface BlockFormat {
  values: number; // per block
  bytes: number; // per block
  decode(src: Uint8Array, at: number, out: Float32Array, o: number): void;
}

/** Every f16 bit pattern as f32 (256 KiB, filled on first use): a scale per block is read in one load. */
let halves: Float32Array | null = null;

function half(src: Uint8Array, at: number): number {
  if (halves === null) {
    halves = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) halves[bits] = f16ToF32(bits);
  }
  return halves[src[at] | (src[at + 1] << 8)];
}

function q8_0(src: Uint8Array, at: number, out: Float32Array, o: number) {
  const d = half(src, at);
  for (let j = 0; j < 32; j++) out[o + j] = d * ((src[at + 2 + j] << 24) >> 24);
}

function q4_0(src: Uint8Array, at: number, out: Float32Array, o: number) {
  const d = half(src, at);
  for (let j = 0; j < 16; j++) {
    const byte = src[at + 2 + j];
    out[o + j] = d * ((byte & 0xf) - 8);
    out[o + j + 16] = d * ((byte >> 4) - 8);
  }
}

function q4_1(src: Uint8Array, at: number, out: Float32Array, o: number) {
  const d = half(src, at);
  const m = half(src, at + 2);
  for (let j = 0; j < 16; j++) {
    const byte = src[at + 4 + j];
    out[o + j] = f(d * (byte & 0xf)) + m;
    out[o + j + 16] = f(d * (byte >> 4)) + m;
  }
}

/** The j-th 6-bit scale and min of a K-quant super-block (get_scale_min_k4), from its 12 packed bytes. */
export function scaleMin(src: Uint8Array, scales: number, j: number): [number, number] {
  if (j < 4) return [src[scales + j] & 63, src[scales + j + 4] & 63];
  const s = (src[scales + j + 4] & 0xf) | ((src[scales + j - 4] >> 6) << 4);
  const m = (src[scales + j + 4] >> 4) | ((src[scales + j] >> 6) << 4);
  return [s, m];
}

/** Q4_K and Q5_K: 8 sub-blocks of 32, each with its scale and min; Q5_K adds a high bit from qh. */
function kQuant(fifthBit: boolean) {
  return (src: Uint8Array, at: number, out: Float32Array, o: number) => {
    const d = half(src, at);
    const dmin = half(src, at + 2);
    const scales = at + 4;
    const qh = at + 16;
    let qs = fifthBit ? at + 48 : at + 16;
    for (let sub = 0; sub < 8; sub += 2) {
      const [s1, m1] = scaleMin(src, scales, sub);
      const [s2, m2] = scaleMin(src, scales, sub + 1);
      const d1 = f(d * s1);
      const min1 = f(dmin * m1);
      const d2 = f(d * s2);
      const min2 = f(dmin * m2);
      for (let l = 0; l < 32; l++) {
        const high1 = fifthBit && src[qh + l] & (1 << sub) ? 16 : 0;
        const high2 = fifthBit && src[qh + l] & (2 << sub) ? 16 : 0;
        out[o + sub * 32 + l] = f(d1 * ((src[qs + l] & 0xf) + high1)) - min1;
        out[o + sub * 32 + 32 + l] = f(d2 * ((src[qs + l] >> 4) + high2)) - min2;
      }
      qs += 32;
    }
  };
}

function q6_K(src: Uint8Array, at: number, out: Float32Array, o: number) {
  const d = half(src, at + 208);
  const scales = new Float32Array(16);
  for (let k = 0; k < 16; k++) scales[k] = d * ((src[at + 192 + k] << 24) >> 24);
  for (let half128 = 0; half128 < 2; half128++) {
    const ql = at + half128 * 64;
    const qh = at + 128 + half128 * 32;
    const sc = half128 * 8;
    const y = o + half128 * 128;
    for (let l = 0; l < 32; l++) {
      const is = sc + (l >> 4);
      const h = src[qh + l];
      const lo = src[ql + l];
      const hi = src[ql + l + 32];
      out[y + l] = scales[is] * (((lo & 0xf) | ((h & 3) << 4)) - 32);
      out[y + l + 32] = scales[is + 2] * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32);
      out[y + l + 64] = scales[is + 4] * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
      out[y + l + 96] = scales[is + 6] * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
    }
  }
}

/** By ggml type name; the numbers are GGMLQuantizationType's. */
export const BLOCK_FORMATS = {
  Q4_0: { values: 32, bytes: 18, decode: q4_0 },
  Q4_1: { values: 32, bytes: 20, decode: q4_1 },
  Q8_0: { values: 32, bytes: 34, decode: q8_0 },
  Q4_K: { values: 256, bytes: 144, decode: kQuant(false) },
  Q5_K: { values: 256, bytes: 176, decode: kQuant(true) },
  Q6_K: { values: 256, bytes: 210, decode: q6_K },
} satisfies Record<string, BlockFormat>;

/** Every block of `bytes` (a whole number of them) as f32 values. */
export function dequantizeBlocks(format: BlockFormat, bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / format.bytes;
  const out = new Float32Array(blocks * format.values);
  for (let b = 0; b < blocks; b++) format.decode(bytes, b * format.bytes, out, b * format.values);
  return out;
}
