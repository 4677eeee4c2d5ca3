/**
 * Log-probabilities of a sampled token and of the most likely tokens, from one row of raw logits: the model's
 * own distribution, before temperature, top-k and top-p (vLLM's default, "raw_logprobs"). Plain TypeScript
 * over the row: a max, a Σexp in f64, and a partial selection of the top k — only rows of sequences that
 * asked pay for it.
 *
 *   const lp = tokenLogprobs(logits, row * vocab, vocab, token, 5);
 *   // lp.logprob = log p(token); lp.topIds[0] is the most likely token
 */

/** The most top logprobs a request may ask for (vLLM's default max_logprobs, OpenAI's top_logprobs limit). */
export const MAX_LOGPROBS = 20;

export interface TokenLogprobs {
  /** log p(token) = logit[token] - logsumexp(logits). */
  logprob: number;
  /** The k most likely tokens, most likely first (ties: lower id first). */
  topIds: number[];
  /** Their log-probabilities, aligned with topIds (non-increasing). */
  topLogprobs: number[];
  /** The token's rank in the distribution (1: the most likely), where computed (prompt logprobs). */
  rank?: number;
}

/** NaN logits count as -∞: they never win and carry no mass. */
function keyOf(x: number): number {
  return Number.isNaN(x) ? Number.NEGATIVE_INFINITY : x;
}

/** log Σ exp(logits[offset .. offset+vocab)), stable (shifted by the max), summed in f64. */
export function logSumExp(logits: Float32Array, offset: number, vocab: number): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let v = offset; v < offset + vocab; v++) if (logits[v] > m) m = logits[v];
  if (m === Number.NEGATIVE_INFINITY || m === Number.POSITIVE_INFINITY) return m;
  let s = 0;
  for (let v = offset; v < offset + vocab; v++) {
    const x = logits[v];
    if (x > Number.NEGATIVE_INFINITY) s += Math.exp(x - m);
  }
  return m + Math.log(s);
}

/**
 * The k largest logits of a row, largest first (ties: lower id first), by insertion into a k-long sorted
 * list: one pass over the vocabulary, no full sort.
 */
export function topLogits(
  logits: Float32Array,
  offset: number,
  vocab: number,
  k: number,
): { ids: number[]; values: number[] } {
  const ids: number[] = [];
  const values: number[] = [];
  const n = Math.min(k, vocab);
  if (n <= 0) return { ids, values };
  for (let v = 0; v < vocab; v++) {
    const x = keyOf(logits[offset + v]);
    const full = ids.length === n;
    if (full && !(x > values[n - 1])) continue;
    // Fill the last place (dropping the smallest when full) and move the newcomer up past smaller values
    // only, so an equal earlier token stays ahead.
    let i = full ? n - 1 : ids.length;
    while (i > 0 && values[i - 1] < x) {
      values[i] = values[i - 1];
      ids[i] = ids[i - 1];
      i--;
    }
    values[i] = x;
    ids[i] = v;
  }
  return { ids, values };
}

/** The sampled token's log-probability and the top k (0..MAX_LOGPROBS) of one row of raw logits. */
export function tokenLogprobs(
  logits: Float32Array,
  offset: number,
  vocab: number,
  token: number,
  k: number,
): TokenLogprobs {
  const lse = logSumExp(logits, offset, vocab);
  const top = topLogits(logits, offset, vocab, k);
  return {
    logprob: keyOf(logits[offset + token]) - lse,
    topIds: top.ids,
    topLogprobs: top.values.map((x) => x - lse),
  };
}
