/** Per-request generation settings, as the OpenAI API and vLLM name them. */
import { MAX_LOGPROBS } from './logprobs.ts';

export interface SamplingParams {
  maxTokens: number;
  minTokens: number; // EOS and stop tokens are ignored until this many tokens exist
  temperature: number; // 0 → greedy
  topP: number;
  topK: number; // 0 → off
  seed: number | null;
  ignoreEos: boolean;
  stopTokenIds: number[];
  /** Also return the logits of every prompt position (conformance tests). */
  promptLogits: boolean;
  /** Also return the raw logits row that chose each output token (conformance tests: decode numerics). */
  stepLogits: boolean;
  /**
   * Log-probabilities per output token (vLLM's `logprobs`): null → none; k → the sampled token's and the k
   * most likely tokens' (0..MAX_LOGPROBS), of the raw distribution (before temperature, top-k, top-p).
   */
  logprobs: number | null;
  /**
   * Log-probabilities of each prompt token after the first (vLLM's `prompt_logprobs`): null → none; k → the
   * token's and the k most likely at its position, of the raw distribution.
   */
  promptLogprobs: number | null;
  /** OpenAI's: subtracted once from every token already in the output (-2..2). */
  presencePenalty: number;
  /** OpenAI's: subtracted per occurrence of a token in the output (-2..2). */
  frequencyPenalty: number;
  /** vLLM's: tokens of the prompt or output are made less likely by this factor (> 0; 1 = off). */
  repetitionPenalty: number;
  /** OpenAI's logit_bias: (token id, bias in -100..100) pairs added to the logits; null = none. */
  logitBias: [number, number][] | null;
}

/** OpenAI's limits on the presence and frequency penalties, and on a logit bias. */
export const MAX_PENALTY = 2;
export const MAX_LOGIT_BIAS = 100;

export const DEFAULT_SAMPLING: SamplingParams = {
  maxTokens: 16,
  minTokens: 0,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: null,
  ignoreEos: false,
  stopTokenIds: [],
  promptLogits: false,
  stepLogits: false,
  logprobs: null,
  promptLogprobs: null,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: null,
};

export function samplingParams(partial: Partial<SamplingParams> = {}): SamplingParams {
  const p = { ...DEFAULT_SAMPLING, ...partial };
  const bad = (field: string, why: string) => {
    throw new RangeError(`sampling parameter '${field}' ${why}`);
  };
  if (!Number.isInteger(p.maxTokens) || p.maxTokens < 1)
    bad('max_tokens', `must be an integer ≥ 1 (got ${p.maxTokens})`);
  if (!Number.isInteger(p.minTokens) || p.minTokens < 0 || p.minTokens > p.maxTokens) {
    bad('min_tokens', `must be an integer between 0 and max_tokens (got ${p.minTokens})`);
  }
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature))
    bad('temperature', `must be ≥ 0 (got ${p.temperature})`);
  if (!(p.topP > 0 && p.topP <= 1)) bad('top_p', `must be in (0, 1] (got ${p.topP})`);
  if (!Number.isInteger(p.topK) || p.topK < 0) bad('top_k', `must be an integer ≥ 0 (got ${p.topK})`);
  if (p.logprobs !== null && !(Number.isInteger(p.logprobs) && p.logprobs >= 0 && p.logprobs <= MAX_LOGPROBS)) {
    bad('logprobs', `must be an integer between 0 and ${MAX_LOGPROBS} (got ${p.logprobs})`);
  }
  if (
    p.promptLogprobs !== null &&
    !(Number.isInteger(p.promptLogprobs) && p.promptLogprobs >= 0 && p.promptLogprobs <= MAX_LOGPROBS)
  ) {
    bad('prompt_logprobs', `must be an integer between 0 and ${MAX_LOGPROBS} (got ${p.promptLogprobs})`);
  }
  for (const [field, value] of [
    ['presence_penalty', p.presencePenalty],
    ['frequency_penalty', p.frequencyPenalty],
  ] as const) {
    if (!(Math.abs(value) <= MAX_PENALTY))
      bad(field, `must be between -${MAX_PENALTY} and ${MAX_PENALTY} (got ${value})`);
  }
  if (!(p.repetitionPenalty > 0 && Number.isFinite(p.repetitionPenalty))) {
    bad('repetition_penalty', `must be > 0 (got ${p.repetitionPenalty})`);
  }
  for (const [id, bias] of p.logitBias ?? []) {
    if (!Number.isInteger(id) || id < 0) bad('logit_bias', `keys must be token ids (got ${id})`);
    if (!(Math.abs(bias) <= MAX_LOGIT_BIAS))
      bad('logit_bias', `values must be between -${MAX_LOGIT_BIAS} and ${MAX_LOGIT_BIAS} (got ${bias})`);
  }
  return p;
}
