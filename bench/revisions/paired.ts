/**
 * Paired comparison of two variants measured alternately (A B, B A, A B, …): per metric, each variant's
 * median and the ratio of medians B/A, with the spread of the per-pair ratios. Drift on a shared machine hits
 * both halves of a pair alike, so the per-pair ratios are what to trust; "within noise" means their min..max
 * includes 1.
 */
import { median } from '../util.ts';
import type { Metrics } from './engine-run.ts';

export interface Comparison {
  metric: string;
  /** tok/s: higher is better; ms: lower is better. */
  better: 'higher' | 'lower';
  a: number[];
  b: number[];
  medianA: number;
  medianB: number;
  /** medianB / medianA */
  ratio: number;
  pairRatios: number[];
  min: number;
  max: number;
  verdict: 'better' | 'within noise' | 'worse';
}

export function betterDirection(metric: string): 'higher' | 'lower' {
  return /ms\b|ms\/token/.test(metric) ? 'lower' : 'higher';
}

export function comparePairs(pairs: { a: Metrics; b: Metrics }[]): Comparison[] {
  if (pairs.length === 0) return [];
  const metrics = Object.keys(pairs[0].a).filter((m) => pairs.every((p) => m in p.a && m in p.b));
  return metrics.map((metric) => {
    const a = pairs.map((p) => p.a[metric]);
    const b = pairs.map((p) => p.b[metric]);
    const pairRatios = pairs.map((p) => p.b[metric] / p.a[metric]);
    const min = Math.min(...pairRatios);
    const max = Math.max(...pairRatios);
    const better = betterDirection(metric);
    const improved = better === 'higher' ? min > 1 : max < 1;
    const worsened = better === 'higher' ? max < 1 : min > 1;
    return {
      metric,
      better,
      a,
      b,
      medianA: median(a),
      medianB: median(b),
      ratio: median(b) / median(a),
      pairRatios,
      min,
      max,
      verdict: improved ? 'better' : worsened ? 'worse' : 'within noise',
    };
  });
}
