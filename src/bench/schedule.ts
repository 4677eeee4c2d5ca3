/**
 * Arrival times for --request-rate: Poisson (exponential gaps, the default, as in AIPerf and vLLM's
 * benchmark) or constant (evenly spaced). The first request goes at t = 0.
 */
import type { BenchRandom } from './random.ts';

export const ARRIVAL_PATTERNS = ['poisson', 'constant'] as const;
export type ArrivalPattern = (typeof ARRIVAL_PATTERNS)[number];

/** Seconds until the next arrival. */
export type GapSampler = () => number;

export function gapSampler(pattern: ArrivalPattern, ratePerSecond: number, rng: BenchRandom): GapSampler {
  if (!(ratePerSecond > 0)) throw new Error(`--request-rate must be > 0, got ${ratePerSecond}`);
  return pattern === 'constant' ? () => 1 / ratePerSecond : () => rng.exponential(ratePerSecond);
}

/** Offsets in seconds from the start of the run of the first `count` arrivals. */
export function arrivalOffsets(count: number, next: GapSampler): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) {
    out.push(t);
    t += next();
  }
  return out;
}
