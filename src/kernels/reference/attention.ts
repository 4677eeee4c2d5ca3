/**
 * Reference RoPE + cache write and paged attention: direct loops, f64 sums, the oracle for the native path.
 */
import { bf16ToF32, f32ToBf16 } from '../dtype.ts';
import type { AttentionBatch, AttentionShape, Kernels, KvBuffer } from '../types.ts';

const f = Math.fround;

function fail(message: string): never {
  throw new RangeError(`attention: ${message}`);
}

function isWhole(n: number, min: number): boolean {
  return Number.isInteger(n) && n >= min;
}

export function checkAttentionShape(shape: AttentionShape): void {
  const { numHeads, numKvHeads, headDim, blockSize } = shape;
  if (![numHeads, numKvHeads, headDim, blockSize].every((n) => isWhole(n, 1)))
    fail('numHeads, numKvHeads, headDim and blockSize must be positive integers');
  if (numHeads % numKvHeads !== 0) fail('numHeads must be a multiple of numKvHeads (grouped-query attention)');
  if (shape.scale !== undefined && !(shape.scale > 0 && Number.isFinite(shape.scale)))
    fail('scale must be finite and > 0 (undefined: 1/√headDim)');
  if (shape.softcap !== undefined && !(shape.softcap >= 0 && Number.isFinite(shape.softcap)))
    fail('softcap must be finite and ≥ 0 (0: off)');
}

/** Both caches f32, or both bf16 (Uint16Array); anything else is a TypeError, as from the native binding. */
function isBf16(kCache: KvBuffer, vCache: KvBuffer): boolean {
  const kind = (c: KvBuffer) => (c instanceof Float32Array ? 'f32' : c instanceof Uint16Array ? 'bf16' : 'other');
  const k = kind(kCache);
  if (k === 'other' || kind(vCache) === 'other')
    throw new TypeError('attention: caches must be Float32Array (f32) or Uint16Array (bf16 bit patterns)');
  if (k !== kind(vCache)) throw new TypeError('attention: kCache and vCache must have the same dtype');
  return k === 'bf16';
}

function widen(cache: KvBuffer): Float32Array {
  return cache instanceof Float32Array ? cache : Float32Array.from(cache, bf16ToF32);
}

function checkCaches(kCache: KvBuffer, vCache: KvBuffer, shape: AttentionShape): number {
  if (kCache.length !== vCache.length) fail('kCache and vCache must have the same length');
  const blockElements = shape.blockSize * shape.numKvHeads * shape.headDim;
  if (kCache.length % blockElements !== 0) fail('cache length must be a multiple of blockSize·numKvHeads·headDim');
  return kCache.length / blockElements; // blocks
}

/**
 * x'[i] = x[i]·c - x[i+h]·s ; x'[i+h] = x[i+h]·c + x[i]·s (h = cos.length = R/2), every product and sum
 * rounded to f32 (no FMA); x'[i] = x[i] for R ≤ i < headDim.
 */
function rotate(
  src: Float32Array,
  srcOffset: number,
  cos: Float32Array,
  sin: Float32Array,
  dst: Float32Array,
  dstOffset: number,
  headDim: number,
) {
  const half = cos.length;
  for (let i = 0; i < half; i++) {
    const a = src[srcOffset + i];
    const b = src[srcOffset + i + half];
    dst[dstOffset + i] = f(f(a * cos[i]) - f(b * sin[i]));
    dst[dstOffset + i + half] = f(f(b * cos[i]) + f(a * sin[i]));
  }
  for (let i = 2 * half; i < headDim; i++) dst[dstOffset + i] = src[srcOffset + i];
}

export const referenceAttentionKernels: Pick<Kernels, 'ropeAndCacheWrite' | 'pagedAttention'> = {
  /**
   * qkv [T, (Hq+2Hkv)·D] → qOut [T, Hq·D], kCache/vCache rows slotMapping[t] (-1: skipped), [rows, Hkv·D].
   * bf16 caches (Uint16Array) get f32ToBf16 of each written value.
   * Semantics: angle = f32(f32(pos[t])·invFreq[i]), i < R/2 (R = shape.rotaryDim ?? D); c, s = f32(cos), f32(sin);
   *   q' = rotate_half RoPE(q[:R]) ++ q[R:], k' likewise; qOut[t] = q'; kCache[slot] = k'; vCache[slot] = v
   */
  ropeAndCacheWrite(qkv, numTokens, shape, positions, invFreq, qOut, kCache, vCache, slotMapping) {
    const bf16 = isBf16(kCache, vCache);
    checkAttentionShape(shape);
    const { numHeads: hq, numKvHeads: hkv, headDim: d } = shape;
    const rotary = shape.rotaryDim ?? d;
    if (shape.rotaryDim !== undefined && !(isWhole(rotary, 2) && rotary <= d))
      fail('rotaryDim must be a whole number in [2, headDim]');
    if (rotary % 2 !== 0)
      fail(shape.rotaryDim === undefined ? 'headDim must be even for rotate-half RoPE' : 'rotaryDim must be even');
    if (!isWhole(numTokens, 0)) fail('numTokens must be a whole number ≥ 0');
    const rowWidth = (hq + 2 * hkv) * d;
    if (qkv.length < numTokens * rowWidth) fail('qkv is shorter than numTokens·(numHeads + 2·numKvHeads)·headDim');
    if (positions.length < numTokens) fail('positions is shorter than numTokens');
    if (slotMapping.length < numTokens) fail('slotMapping is shorter than numTokens');
    if (invFreq.length < rotary / 2) fail('invFreq must hold rotaryDim/2 frequencies (headDim/2 without rotaryDim)');
    if (qOut.length < numTokens * hq * d) fail('qOut is shorter than numTokens·numHeads·headDim');
    const cacheRows = checkCaches(kCache, vCache, shape) * shape.blockSize;
    for (let t = 0; t < numTokens; t++) {
      if (slotMapping[t] < -1 || slotMapping[t] >= cacheRows) fail(`slotMapping[${t}] is outside the cache`);
    }

    const half = rotary / 2;
    // A bf16 cache: keys rotated in f32 into kDst first, then rounded (the values rounded as they are).
    const kDst = bf16 ? new Float32Array(hkv * d) : (kCache as Float32Array);
    const cos = new Float32Array(half);
    const sin = new Float32Array(half);
    const kvWidth = hkv * d;
    for (let t = 0; t < numTokens; t++) {
      const pos = f(positions[t]);
      for (let i = 0; i < half; i++) {
        const angle = f(pos * invFreq[i]);
        cos[i] = Math.cos(angle);
        sin[i] = Math.sin(angle);
      }
      const row = t * rowWidth;
      for (let h = 0; h < hq; h++) rotate(qkv, row + h * d, cos, sin, qOut, (t * hq + h) * d, d);
      const slot = slotMapping[t];
      if (slot < 0) continue;
      const kBase = bf16 ? 0 : slot * kvWidth;
      for (let g = 0; g < hkv; g++) rotate(qkv, row + (hq + g) * d, cos, sin, kDst, kBase + g * d, d);
      const v = qkv.subarray(row + (hq + hkv) * d, row + rowWidth);
      if (!bf16) {
        vCache.set(v, slot * kvWidth);
        continue;
      }
      for (let i = 0; i < kvWidth; i++) {
        kCache[slot * kvWidth + i] = f32ToBf16(kDst[i]);
        vCache[slot * kvWidth + i] = f32ToBf16(v[i]);
      }
    }
  },

  /**
   * q, out [T, Hq·D]; caches [blocks·bs, Hkv·D], f32 or bf16 (widened exactly). Query i of sequence s sits
   * at p = kvLen[s] - qLen + i.
   * Semantics: score_j = (q[t,h]·k[j, g])·scale, g = h / (Hq/Hkv), scale = shape.scale ?? 1/√D (as f32);
   *   softcap c > 0: score_j = c·tanh(score_j / c); then over keys p-W < j ≤ p (W = 0: all j ≤ p):
   *   out[t, h] = Σ_j softmax_j(score_j) · v[j, g]   (f64 sums; the kernels accumulate in f32)
   */
  pagedAttention(q, kCacheIn, vCacheIn, out, shape, batch) {
    isBf16(kCacheIn, vCacheIn);
    checkAttentionShape(shape);
    checkBatch(q, kCacheIn, vCacheIn, out, shape, batch);
    const kCache = widen(kCacheIn);
    const vCache = widen(vCacheIn);
    const { numHeads: hq, numKvHeads: hkv, headDim: d, blockSize: bs } = shape;
    const group = hq / hkv;
    const kvWidth = hkv * d;
    const scale = Math.fround(shape.scale ?? 1 / Math.sqrt(d));
    const softcap = shape.softcap ?? 0;
    for (let s = 0; s < batch.numSeqs; s++) {
      const qLen = batch.qStart[s + 1] - batch.qStart[s];
      const first = batch.kvLen[s] - qLen;
      const table = batch.blockTableStart[s];
      const scores = new Float64Array(batch.kvLen[s]);
      const acc = new Float64Array(d);
      for (let i = 0; i < qLen; i++) {
        const pos = first + i;
        const lo = shape.slidingWindow ? Math.max(0, pos - shape.slidingWindow + 1) : 0;
        const t = batch.qStart[s] + i;
        for (let h = 0; h < hq; h++) {
          const qOffset = (t * hq + h) * d;
          const kvOffset = Math.floor(h / group) * d;
          let max = Number.NEGATIVE_INFINITY;
          for (let j = lo; j <= pos; j++) {
            const rowStart = (batch.blockTables[table + Math.floor(j / bs)] * bs + (j % bs)) * kvWidth + kvOffset;
            let dot = 0;
            for (let x = 0; x < d; x++) dot += q[qOffset + x] * kCache[rowStart + x];
            scores[j] = softcap > 0 ? softcap * Math.tanh((dot * scale) / softcap) : dot * scale;
            if (scores[j] > max) max = scores[j];
          }
          acc.fill(0);
          let sum = 0;
          for (let j = lo; j <= pos; j++) {
            const p = Math.exp(scores[j] - max);
            sum += p;
            const rowStart = (batch.blockTables[table + Math.floor(j / bs)] * bs + (j % bs)) * kvWidth + kvOffset;
            for (let x = 0; x < d; x++) acc[x] += p * vCache[rowStart + x];
          }
          for (let x = 0; x < d; x++) out[qOffset + x] = acc[x] / sum;
        }
      }
    }
  },
};

function checkBatch(
  q: Float32Array,
  kCache: KvBuffer,
  vCache: KvBuffer,
  out: Float32Array,
  shape: AttentionShape,
  batch: AttentionBatch,
): void {
  const blocks = checkCaches(kCache, vCache, shape);
  const { numSeqs, qStart, kvLen, blockTables, blockTableStart } = batch;
  if (!isWhole(numSeqs, 0)) fail('numSeqs must be a whole number ≥ 0');
  if (numSeqs === 0) return;
  if (qStart.length < numSeqs + 1 || kvLen.length < numSeqs || blockTableStart.length < numSeqs)
    fail('qStart must hold numSeqs + 1 entries, kvLen and blockTableStart numSeqs entries');
  if (qStart[0] < 0) fail('qStart[0] must be ≥ 0');
  for (let s = 0; s < numSeqs; s++) {
    const qLen = qStart[s + 1] - qStart[s];
    if (qLen < 0) fail(`qStart must be non-decreasing (sequence ${s})`);
    if (kvLen[s] < qLen) fail(`kvLen[${s}] = ${kvLen[s]} is smaller than its ${qLen} queries`);
    const needed = Math.ceil(kvLen[s] / shape.blockSize);
    if (needed === 0) continue;
    const start = blockTableStart[s];
    if (start < 0 || start + needed > blockTables.length) fail(`blockTables too short for sequence ${s}`);
    for (let b = 0; b < needed; b++) {
      const block = blockTables[start + b];
      if (block < 0 || block >= blocks) fail(`block id ${block} of sequence ${s} is outside the cache`);
    }
  }
  const need = qStart[numSeqs] * shape.numHeads * shape.headDim;
  if (q.length < need || out.length < need) fail('q and out must hold qStart[numSeqs]·numHeads·headDim values');
}
