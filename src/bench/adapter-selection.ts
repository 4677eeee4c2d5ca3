/**
 * Which model (base or adapter) each request names: round-robin, uniform random, or Zipf(α) popularity —
 * the i-th model (1-based) drawn with probability ∝ 1/i^α, the skewed adapter traffic S-LoRA and Punica
 * evaluate with. Seeded, so a run is reproducible.
 */
import type { BenchRandom } from './random.ts';

export const SELECTION_STRATEGIES = ['round_robin', 'random', 'zipf'] as const;
export type SelectionStrategy = (typeof SELECTION_STRATEGIES)[number];

/** Accepts AIPerf's spelling too ('round-robin'). */
export function parseSelectionStrategy(value: string): SelectionStrategy {
  const normalized = value.replace(/-/g, '_');
  if ((SELECTION_STRATEGIES as readonly string[]).includes(normalized)) return normalized as SelectionStrategy;
  throw new Error(`--model-selection-strategy: expected one of ${SELECTION_STRATEGIES.join(', ')}, got '${value}'`);
}

/** Probabilities of ranks 1..n under Zipf(α); they sum to 1. */
export function zipfWeights(n: number, alpha: number): number[] {
  const raw = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** alpha);
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => w / total);
}

export type ModelSelector = () => string;

export function createModelSelector(
  strategy: SelectionStrategy,
  models: readonly string[],
  rng: BenchRandom,
  zipfAlpha = 1,
): ModelSelector {
  if (models.length === 0) throw new Error('no model to send requests to');
  if (strategy === 'round_robin') {
    let next = 0;
    return () => models[next++ % models.length];
  }
  if (strategy === 'random') return () => models[rng.int(models.length)];
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of zipfWeights(models.length, zipfAlpha)) {
    sum += w;
    cumulative.push(sum);
  }
  return () => {
    const u = rng.next();
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (u < cumulative[mid]) hi = mid;
      else lo = mid + 1;
    }
    return models[lo];
  };
}
