/**
 * Reference sampling and log-softmax. The native sampler runs the same arithmetic (see
 * native/include/loraplex/sampling.h), so both pick the same token; this one simply sorts everything.
 */
import type { Kernels, SamplingRow } from '../types.ts';

function fail(message: string): never {
  throw new RangeError(`sampling: ${message}`);
}

export function checkSamplingRow(row: SamplingRow, index: number): void {
  const where = `sampling row ${index}: `;
  if (!(row.temperature >= 0) || !Number.isFinite(row.temperature)) fail(`${where}temperature must be finite and ≥ 0`);
  if (!Number.isInteger(row.topK) || row.topK < 0) fail(`${where}topK must be a whole number ≥ 0`);
  if (!(row.topP >= 0 && row.topP <= 1)) fail(`${where}topP must be in [0, 1]`);
  if (!(row.uniform >= 0 && row.uniform < 1)) fail(`${where}uniform must be in [0, 1)`);
}

/** NaN logits never win and never get mass. */
function keyOf(logit: number): number {
  return Number.isNaN(logit) ? Number.NEGATIVE_INFINITY : logit;
}

/**
 * The integer weight unit of |C| candidates: 2^S with S = 63 − the bit length of |C|, so that the weights
 * floor(p · 2^S) of a whole candidate set sum below 2^63 and every running sum is exact.
 */
export function weightScale(candidates: number): number {
  return 2 ** (63 - (32 - Math.clz32(candidates)));
}

/**
 * One row (offset into logits) → token.
 * Semantics: temperature 0 → argmax (lowest index on ties). Otherwise C = top-k keys (ties: lower index) or all;
 *   x = key / T; m = max x; p = x == m ? 1 : exp(x - m); w = floor(p · weightScale(|C|)) (exact integers);
 *   Z = Σ_C w; L = C by (p desc, token asc); R_i = Σ w over L[0..i];
 *   topP < 1 → L up to the first R_i with Number(R_i) ≥ topP·Number(Z) (M = that R_i) else L (M = Z);
 *   the first kept token with Number(R_i) > uniform·Number(M) (one always is: uniform < 1 keeps the product
 *   below Number(M)).
 */
export function sampleRow(logits: Float32Array, offset: number, vocab: number, row: SamplingRow): number {
  if (row.temperature === 0 || vocab === 1) {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (keyOf(logits[offset + v]) > keyOf(logits[offset + best])) best = v;
    return best;
  }
  let candidates = Array.from({ length: vocab }, (_, v) => v);
  if (row.topK > 0 && row.topK < vocab) {
    candidates.sort((a, b) => keyOf(logits[offset + b]) - keyOf(logits[offset + a]) || a - b);
    candidates = candidates.slice(0, row.topK).sort((a, b) => a - b);
  }
  const x = candidates.map((v) => keyOf(logits[offset + v]) / row.temperature);
  const m = x.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
  const scale = weightScale(candidates.length);
  const order = candidates.map((token, i) => {
    const p = x[i] === m ? 1 : Math.exp(x[i] - m);
    return { token, p, w: BigInt(Math.floor(p * scale)) };
  });
  const z = order.reduce((sum, c) => sum + c.w, 0n);
  order.sort((a, b) => (a.p > b.p ? -1 : a.p < b.p ? 1 : a.token - b.token));

  /** The first entry of `order` whose running weight satisfies `reached` (monotone), with that sum. */
  const findFirst = (reached: (sum: bigint) => boolean): { index: number; sum: bigint } | null => {
    let sum = 0n;
    for (let i = 0; i < order.length; i++) {
      sum += order[i].w;
      if (reached(sum)) return { index: i, sum };
    }
    return null;
  };
  let mass = z;
  if (row.topP < 1) {
    const cut = row.topP * Number(z);
    mass = findFirst((sum) => Number(sum) >= cut)?.sum ?? z;
  }
  const target = row.uniform * Number(mass);
  return order[findFirst((sum) => Number(sum) > target)?.index ?? 0].token;
}

export const referenceSamplingKernels: Pick<Kernels, 'sample' | 'logSoftmax'> = {
  /** logits [rows, vocab] → out [rows] (see sampleRow for the semantics). */
  sample(logits, vocab, rows, out) {
    if (!Number.isInteger(vocab) || vocab < 1) fail('vocab must be a whole number ≥ 1');
    if (logits.length < rows.length * vocab) fail('logits must hold rows·vocab values');
    if (out.length < rows.length) fail('out must hold one entry per row');
    rows.forEach(checkSamplingRow);
    rows.forEach((row, r) => {
      out[r] = sampleRow(logits, r * vocab, vocab, row);
    });
  },

  /**
   * logits [vocab] → out [vocab].
   * Semantics: out[v] = (x[v] - m) - log Σ exp(x - m), m = max, and x == m counted as a 0 shift (±inf rows)
   */
  logSoftmax(logits, vocab, out) {
    if (!Number.isInteger(vocab) || vocab < 1) fail('vocab must be a whole number ≥ 1');
    if (logits.length < vocab || out.length < vocab) fail('logits and out must hold vocab values');
    let m = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < vocab; v++) if (logits[v] > m) m = logits[v];
    const shifted = (v: number) => (logits[v] === m ? 0 : logits[v] - m);
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(shifted(v));
    const logS = Math.log(s);
    for (let v = 0; v < vocab; v++) out[v] = shifted(v) - logS;
  },
};
