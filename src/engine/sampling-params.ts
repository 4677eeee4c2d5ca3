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
}

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
  return p;
}
