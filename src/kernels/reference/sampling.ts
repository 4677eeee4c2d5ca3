/**
 * Reference sampling and log-softmax. The native sampler runs the same f64 arithmetic in the same order
 * (see native/include/loraplex/sampling.h), so both pick the same token; this one simply sorts everything.
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
 * Σ p over ascending tokens in eight interleaved f64 lanes (lane i % 8), combined pairwise: the native
 * sampler's vectorized sum, reproduced exactly.
 */
export function laneSum(p: ArrayLike<number>): number {
  const lanes = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < p.length; i++) lanes[i % 8] += p[i];
  const low = lanes[0] + lanes[1] + (lanes[2] + lanes[3]); // (l0 + l1) + (l2 + l3)
  const high = lanes[4] + lanes[5] + (lanes[6] + lanes[7]);
  return low + high;
}

/**
 * One row (offset into logits) → token.
 * Semantics: temperature 0 → argmax (lowest index on ties). Otherwise C = top-k keys (ties: lower index) or all;
 *   x = key / T; m = max x; p = x == m ? 1 : exp(x - m); Z = laneSum_C p (token order); L = C by (p desc, token asc);
 *   topP < 1 → shortest prefix of L with running sum ≥ topP·Z (M = that sum) else L (M = Z);
 *   first kept token with running sum > uniform·M (rounding fallback: last kept token with p > 0).
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
  const p = x.map((xv) => (xv === m ? 1 : Math.exp(xv - m)));
  const z = laneSum(p);
  const order = candidates.map((token, i) => ({ token, p: p[i] }));
  order.sort((a, b) => (a.p > b.p ? -1 : a.p < b.p ? 1 : a.token - b.token));

  let kept = order.length;
  let mass = z;
  if (row.topP < 1) {
    const cut = row.topP * z;
    let cum = 0;
    for (let i = 0; i < order.length; i++) {
      cum += order[i].p;
      kept = i + 1;
      if (cum >= cut) break;
    }
    mass = cum;
  }
  const target = row.uniform * mass;
  let acc = 0;
  for (let i = 0; i < kept; i++) {
    acc += order[i].p;
    if (acc > target) return order[i].token;
  }
  for (let i = kept - 1; i >= 0; i--) if (order[i].p > 0) return order[i].token;
  return order[0].token;
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
