/**
 * Distribution summaries, computed as AIPerf does: percentiles by linear interpolation between the closest
 * ranks (numpy's default), population standard deviation (ddof 0).
 */
export const PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99] as const;

export interface Stats {
  count: number;
  avg: number;
  min: number;
  max: number;
  std: number;
  p1: number;
  p5: number;
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
}

export type StatKey = Exclude<keyof Stats, 'count'>;

/** q in [0, 100] of an ascending array: value at rank q/100·(n−1), interpolated. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
}

/** null when there is no value (e.g. TTFT of a non-streaming run). */
export function summarize(values: readonly number[]): Stats | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  const avg = sum / n;
  let squares = 0;
  for (const v of sorted) squares += (v - avg) ** 2;
  const [p1, p5, p10, p25, p50, p75, p90, p95, p99] = PERCENTILES.map((q) => percentile(sorted, q));
  return {
    count: n,
    avg,
    min: sorted[0],
    max: sorted[n - 1],
    std: Math.sqrt(squares / n),
    p1,
    p5,
    p10,
    p25,
    p50,
    p75,
    p90,
    p95,
    p99,
  };
}
