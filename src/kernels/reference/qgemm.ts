/**
 * Quantized GEMM reference: W kept in ggml's Q8_0 / Q4_K / Q6_K blocks, x quantized per block to int8, integer dot
 * products, scales in f32 — the very arithmetic of the native kernels (native/include/loraplex/qgemm.h), every
 * f32 operation rounded with Math.fround, so native and reference agree bit for bit.
 *
 *   x [M, K] f32, W [N, K] as blocks (Uint8Array), bias [N] → y [M, N]
 *   Semantics: quantize x row r per block of QB values as llama.cpp's x86 AVX2 build does (Q8_0 weights:
 *   quantize_row_q8_0 into block_q8_0, QB = 32; Q4_K, Q6_K: quantize_mat_q8_K / quantize_row_q8_K, QB = 256):
 *     amax = max|x|;  id = amax ? 127 / amax : 0 (∞ → 0);  qx = clamp(round_half_even(x · id), ±127)
 *     Q8_0: dx = f16(amax / 127) (round to nearest even, widened back: the scale block_q8_0 stores)
 *     Q4_K, Q6_K: dx = id ? 1 / id : 0;  bsum_j = Σ qx per 32   (ggml's signed iscale = ∓id flips q and d together)
 *   one f32 chain per output, blocks in ascending order, the integer sums exact:
 *     Q8_0:  acc += f32(Σ_{i<32} qx·qw) · (dx_b · dw_b)
 *     Q4_K:  acc += f32(Σ_j sc_j · Σ_{i<32} q4·qx) · (d · dx_B);  mins += f32(Σ_j m_j · bsum_j) · (dmin · dx_B)
 *     Q6_K:  acc += f32(Σ_j sc_j · Σ_{i<16} (q6 − 32)·qx) · (d · dx_B)   (16 int8 scales, q6 ∈ 0…63)
 *   out = acc [− mins];  y (+)= out + bias
 */
import { BLOCK_FORMATS, scaleMin } from '../block-formats.ts';
import { f16ToF32, f32ToF16 } from '../dtype.ts';
import type { BlockDType } from '../types.ts';

const f = Math.fround;

export const QGEMM_BLOCK: Record<BlockDType, number> = { q8_0: 32, q4_k: 256, q6_k: 256 };

/** Round half to even, as the CPU's default rounding mode (cvtps2dq, nearbyint). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface QuantizedRow {
  qs: Int8Array; // [K]
  d: Float32Array; // [K / block]
  bsum: Int32Array; // [K / 32]
}

/** One x row in int8 blocks for `type` weights (the Semantics' first lines). */
export function quantizeRow(x: Float32Array, type: BlockDType): QuantizedRow {
  const block = QGEMM_BLOCK[type];
  const k = x.length;
  const qs = new Int8Array(k);
  const d = new Float32Array(k / block);
  for (let b = 0; b < k / block; b++) {
    let amax = 0;
    for (let i = 0; i < block; i++) amax = Math.max(amax, Math.abs(x[b * block + i]));
    // 127 / amax, not 1 / (amax / 127): the two differ in the last bit for some amax, and so may a q.
    let id = amax !== 0 ? f(127 / amax) : 0;
    if (id === Number.POSITIVE_INFINITY) id = 0; // amax < 127 / FLT_MAX: its dx is 0 either way
    d[b] = type === 'q8_0' ? f16ToF32(f32ToF16(f(amax / 127))) : id !== 0 ? f(1 / id) : 0;
    for (let i = 0; i < block; i++) {
      const q = roundHalfEven(f(x[b * block + i] * id));
      qs[b * block + i] = Math.max(-127, Math.min(127, q));
    }
  }
  const bsum = new Int32Array(k / 32);
  for (let j = 0; j < k / 32; j++) {
    let s = 0;
    for (let i = 0; i < 32; i++) s += qs[j * 32 + i];
    bsum[j] = s;
  }
  return { qs, d, bsum };
}

const BLOCK_BYTES = { q8_0: BLOCK_FORMATS.Q8_0.bytes, q4_k: BLOCK_FORMATS.Q4_K.bytes, q6_k: BLOCK_FORMATS.Q6_K.bytes };

const half = (src: Uint8Array, at: number) => f16ToF32(src[at] | (src[at + 1] << 8));

/** One output: x row (quantized) · W row n (its blocks start at byte `at`). */
function dotQ8_0(x: QuantizedRow, w: Uint8Array, at: number, k: number): number {
  let acc = 0;
  for (let b = 0; b < k / 32; b++) {
    const blk = at + b * 34;
    let p = 0;
    for (let i = 0; i < 32; i++) p += x.qs[b * 32 + i] * ((w[blk + 2 + i] << 24) >> 24);
    acc = f(acc + f(p * f(x.d[b] * half(w, blk))));
  }
  return acc;
}

function dotQ4_K(x: QuantizedRow, w: Uint8Array, at: number, k: number): number {
  let acc = 0;
  let mins = 0;
  for (let B = 0; B < k / 256; B++) {
    const blk = at + B * 144;
    let isum = 0;
    let msum = 0;
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMin(w, blk + 4, j);
      const qb = blk + 16 + (j >> 1) * 32;
      const shift = (j & 1) * 4;
      let p = 0;
      for (let i = 0; i < 32; i++) p += ((w[qb + i] >> shift) & 0xf) * x.qs[B * 256 + j * 32 + i];
      isum += sc * p;
      msum += m * x.bsum[B * 8 + j];
    }
    acc = f(acc + f(f(isum) * f(half(w, blk) * x.d[B])));
    mins = f(mins + f(f(msum) * f(half(w, blk + 2) * x.d[B])));
  }
  return f(acc - mins);
}

/** Q6_K's value i of a block at `blk` (ggml's dequantize_row_q6_K order): q ∈ 0…63. */
export function q6Value(w: Uint8Array, blk: number, i: number): number {
  const h = i >> 7; // 128-value half
  const l = i & 31;
  const s = (i >> 5) & 3; // which of ql[l], ql[l + 32], their high nibbles
  const ql = w[blk + 64 * h + l + (s & 1) * 32];
  const low = s < 2 ? ql & 0xf : ql >> 4;
  return low | (((w[blk + 128 + 32 * h + l] >> (2 * s)) & 3) << 4);
}

function dotQ6_K(x: QuantizedRow, w: Uint8Array, at: number, k: number): number {
  let acc = 0;
  for (let B = 0; B < k / 256; B++) {
    const blk = at + B * 210;
    let isum = 0;
    for (let j = 0; j < 16; j++) {
      let p = 0;
      for (let i = 16 * j; i < 16 * j + 16; i++) p += (q6Value(w, blk, i) - 32) * x.qs[B * 256 + i];
      isum += ((w[blk + 192 + j] << 24) >> 24) * p;
    }
    acc = f(acc + f(f(isum) * f(half(w, blk + 208) * x.d[B])));
  }
  return acc;
}

const DOT = { q8_0: dotQ8_0, q4_k: dotQ4_K, q6_k: dotQ6_K };

/** y[M, N] (+)= x[M, K] · Wᵀ (+ bias) with W [N, K] in `type` blocks (row-major, each row whole blocks). */
export function qgemmReference(
  type: BlockDType,
  blocks: Uint8Array,
  n: number,
  k: number,
  x: Float32Array,
  m: number,
  y: Float32Array,
  bias?: Float32Array,
  accumulate = false,
): void {
  const rowBytes = (k / QGEMM_BLOCK[type]) * BLOCK_BYTES[type];
  const dot = DOT[type];
  for (let r = 0; r < m; r++) {
    const qx = quantizeRow(x.subarray(r * k, (r + 1) * k), type);
    for (let j = 0; j < n; j++) {
      let out = dot(qx, blocks, j * rowBytes, k);
      if (bias) out = f(out + bias[j]);
      y[r * n + j] = accumulate ? f(y[r * n + j] + out) : out;
    }
  }
}
