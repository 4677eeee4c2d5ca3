/**
 * Native sampling and log-softmax (native/src/cpu/sampling*.cpp). Same arithmetic, in the same order, as
 * src/kernels/reference/sampling.ts, so both choose the same token; top-k uses a heap and top-p / plain
 * temperature sort only the prefix of tokens the inverse-CDF walk reaches.
 */
import type { Kernels } from '../types.ts';
import { loadAddon } from './addon.ts';

export const nativeSamplingKernels: Pick<Kernels, 'sample' | 'logSoftmax'> = {
  /**
   * logits [rows, vocab] → out [rows]; rows in parallel.
   * Semantics: temperature 0 → argmax (lowest index); else top-k → softmax(x / T) → top-p prefix → inverse CDF
   *   with `uniform`, tokens walked by probability descending then index ascending.
   */
  sample(logits, vocab, rows, out) {
    const params = new Float64Array(rows.length * 4);
    rows.forEach((row, r) => {
      params[4 * r] = row.temperature;
      params[4 * r + 1] = row.topK;
      params[4 * r + 2] = row.topP;
      params[4 * r + 3] = row.uniform;
    });
    loadAddon().sample(logits, vocab, params, rows.length, out);
  },

  /** logits [vocab] → out [vocab]. Semantics: out[v] = logits[v] - logsumexp(logits) */
  logSoftmax(logits, vocab, out) {
    loadAddon().logSoftmax(logits, vocab, out);
  },
};
