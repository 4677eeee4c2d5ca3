/**
 * One run of bench/serving.ts (--mode ratios) in a checkout, read from the JSON it writes there
 * (artifacts/serving/ratios.json): per workload, output tok/s and the TTFT / ITL medians.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PointResult } from '../../src/bench/result.ts';
import { median } from '../util.ts';
import type { Metrics } from './engine-run.ts';
import { runScript } from './run-child.ts';

export function servingMetrics(results: Record<string, PointResult[]>): Metrics {
  const metrics: Metrics = {};
  for (const [name, points] of Object.entries(results)) {
    const m = (f: (p: PointResult) => number | undefined) => median(points.map((p) => f(p) ?? Number.NaN));
    metrics[`${name} · output tok/s`] = m((p) => p.overall.output_token_throughput);
    metrics[`${name} · TTFT p50 ms`] = m((p) => p.overall.stats.time_to_first_token?.p50);
    metrics[`${name} · ITL p50 ms`] = m((p) => p.overall.stats.inter_token_latency?.p50);
  }
  return metrics;
}

export async function runServingBench(dir: string, args: string[]): Promise<Metrics> {
  await runScript(dir, 'bench/serving.ts', ['--mode', 'ratios', ...args]);
  const saved = JSON.parse(await readFile(join(dir, 'artifacts', 'serving', 'ratios.json'), 'utf8')) as {
    results: Record<string, PointResult[]>;
  };
  return servingMetrics(saved.results);
}
