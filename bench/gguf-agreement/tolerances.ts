/**
 * What loraplex must keep to, against llama.cpp on the same GGUF file, for the next-token logprobs at the end
 * of a prompt (tokens in both top-20 sets), set from docs/figures/gguf-agreement.json (32 prompts) with about 2×
 * headroom for another machine's summation order. The live check asserts them on a few prompts.
 *   BF16: measured max 0.073, median 0.0076; greedy paths parted only at llama.cpp top-2 margins ≤ 0.082.
 *   Q8_0: measured max 0.43, median 0.057; parted at margins ≤ 0.26. Seven times BF16's median: loraplex's
 *         int8 path does not reproduce llama.cpp's (see docs/figures/gguf-agreement.md), so this is a
 *         regression bound, not a statement that the two compute the same thing.
 */
export interface AgreementTolerance {
  maxAbsDelta: number;
  medianAbsDelta: number;
  /** A top-1 flip or a greedy divergence is accepted only where llama.cpp's top-2 margin is below this. */
  flipMargin: number;
}

export const AGREEMENT_TOLERANCES: Record<string, AgreementTolerance> = {
  'SmolLM2-135M BF16': { maxAbsDelta: 0.15, medianAbsDelta: 0.02, flipMargin: 0.2 },
  'SmolLM2-135M Q8_0': { maxAbsDelta: 0.8, medianAbsDelta: 0.12, flipMargin: 0.6 },
};
