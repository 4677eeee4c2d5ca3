/**
 * What a request may do to its logits row before sampling: OpenAI's logit_bias and presence and frequency
 * penalties, vLLM's repetition_penalty. In vLLM's order — the bias, then the repetition, frequency and presence
 * penalties — on the raw row of one sequence, for each token v:
 *
 *   x[v] += bias[v]
 *   if v ∈ prompt ∪ output:  x[v] = x[v] > 0 ? x[v] / repetition : x[v] · repetition
 *   x[v] -= frequency · count_output(v) + presence · [count_output(v) > 0]
 *
 * Only sequences that ask pay: the model runner reads their row to the host, changes a copy here and samples
 * it with the same sampler; every other row never leaves the backend. Logprobs stay those of the raw row
 * (vLLM's default, raw_logprobs).
 */
import type { SamplingParams } from './sampling-params.ts';

type Processing = Pick<SamplingParams, 'presencePenalty' | 'frequencyPenalty' | 'repetitionPenalty' | 'logitBias'>;

export function processesLogits(p: Processing): boolean {
  return (
    p.presencePenalty !== 0 || p.frequencyPenalty !== 0 || p.repetitionPenalty !== 1 || (p.logitBias?.length ?? 0) > 0
  );
}

/** Applies `p` to `row` ([vocab], in place) for a sequence with these prompt and output tokens. */
export function processLogits(
  row: Float32Array,
  p: Processing,
  promptIds: readonly number[],
  outputIds: readonly number[],
): void {
  for (const [id, bias] of p.logitBias ?? []) row[id] += bias;
  if (p.repetitionPenalty !== 1) {
    const seen = new Set<number>(promptIds);
    for (const id of outputIds) seen.add(id);
    const r = p.repetitionPenalty;
    for (const id of seen) row[id] = row[id] > 0 ? row[id] / r : row[id] * r;
  }
  if (p.frequencyPenalty === 0 && p.presencePenalty === 0) return;
  const counts = new Map<number, number>();
  for (const id of outputIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, count] of counts) row[id] -= p.frequencyPenalty * count + p.presencePenalty;
}
