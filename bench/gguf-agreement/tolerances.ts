/**
 * What loraplex must keep to, against llama.cpp on the same GGUF file, for the next-token logprobs at the end
 * of a prompt (tokens in both top-20 sets), set from docs/figures/gguf-agreement.json (32 prompts) with about 2×
 * headroom for another machine's summation order. The live check asserts them on a few prompts.
 *   BF16: measured max 0.073, median 0.0076; greedy paths parted only at llama.cpp top-2 margins ≤ 0.082.
 *   Q8_0: measured max 0.41, median 0.058; parted at margins ≤ 0.44 (0.43 / 0.057 / 0.26 before x was
 *         quantized exactly as ggml does). Seven times BF16's median, and a noise floor, not a bug: nudging every
 *         norm weight by 1 ulp moves loraplex's own Q8_0 logprobs by median 0.062 / max 0.66 (int8 rounding
 *         turns any f32 difference into fresh quantization noise), so two implementations that differ in f32
 *         summation order agree only to this. A regression bound, not a statement that they compute the same.
 */
export interface AgreementTolerance {
  maxAbsDelta: number;
  medianAbsDelta: number;
  /** A top-1 flip or a greedy divergence is accepted only where llama.cpp's top-2 margin is below this. */
  flipMargin: number;
}

export const AGREEMENT_TOLERANCES: Record<string, AgreementTolerance> = {
  'SmolLM2-135M BF16': { maxAbsDelta: 0.15, medianAbsDelta: 0.02, flipMargin: 0.2 },
  'SmolLM2-135M Q8_0': { maxAbsDelta: 0.8, medianAbsDelta: 0.12, flipMargin: 0.9 },
};
