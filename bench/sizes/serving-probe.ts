/**
 * Throughput and latency of one model file behind `loraplex serve` (bench:serving's child server and client):
 * one adapter, then `adapters` distinct adapters round-robin, at a small concurrency, interleaved over repeats.
 *
 *   const s = await serveFigures({ root, port: 18700, model, store, adapters: 32, concurrency: 4, … });
 */
import { DEFAULT_OPTIONS } from '../../src/bench/options.ts';
import type { PointResult } from '../../src/bench/result.ts';
import { runBench } from '../../src/bench/run-bench.ts';
import { adapterName } from '../peft-store.ts';
import { startServer } from '../serve-child.ts';
import { median } from '../util.ts';

export interface ServingLoad {
  root: string;
  port: number;
  model: string;
  store: string;
  adapters: number;
  concurrency: number;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  repeats: number;
}

export interface ServingFigures {
  adapters: number;
  outputTokPerS: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  itlP50Ms: number;
  itlP99Ms: number;
  /** Output tok/s of each repeat, in run order. */
  runs: number[];
}

async function measure(url: string, load: ServingLoad, models: string[]): Promise<PointResult> {
  const { result } = await runBench({
    ...DEFAULT_OPTIONS,
    url,
    endpointType: 'completions',
    models,
    modelSelectionStrategy: 'round_robin',
    concurrency: [load.concurrency],
    requestCount: load.requests,
    warmupRequestCount: 0,
    inputTokens: { mean: load.inputTokens, stddev: 0 },
    outputTokens: { mean: load.outputTokens, stddev: 0 },
    useServerTokenCount: true,
    progress: 'off',
    seed: 1,
  });
  const point = result.points[0];
  if (point.overall.error_request_count > 0) {
    throw new Error(`${point.overall.error_request_count} requests failed: ${JSON.stringify(point.overall.errors)}`);
  }
  return point;
}

function summary(adapters: number, points: PointResult[]): ServingFigures {
  const m = (f: (p: PointResult) => number | undefined) => median(points.map((p) => f(p) ?? Number.NaN));
  return {
    adapters,
    outputTokPerS: m((p) => p.overall.output_token_throughput),
    ttftP50Ms: m((p) => p.overall.stats.time_to_first_token?.p50),
    ttftP99Ms: m((p) => p.overall.stats.time_to_first_token?.p99),
    itlP50Ms: m((p) => p.overall.stats.inter_token_latency?.p50),
    itlP99Ms: m((p) => p.overall.stats.inter_token_latency?.p99),
    runs: points.map((p) => p.overall.output_token_throughput),
  };
}

/** [1 adapter, `adapters` adapters]: each repeat runs both in turn so drift spreads over the two. */
export async function serveFigures(load: ServingLoad, log: (line: string) => void): Promise<ServingFigures[]> {
  const names = Array.from({ length: load.adapters }, (_, i) => adapterName(i));
  const server = await startServer(load.root, load.port, [
    '--model',
    load.model,
    '--lora-dir',
    load.store,
    '--max-loras',
    String(load.adapters),
    '--max-cpu-loras',
    String(load.adapters),
    '--kv-cache-tokens',
    String(Math.max(2048, load.concurrency * (load.inputTokens + load.outputTokens) * 2)),
    '--engine-stall-timeout',
    '0',
  ]);
  const sets = [names.slice(0, 1), names];
  const points: PointResult[][] = sets.map(() => []);
  try {
    // every adapter once first, so the measured runs find them loaded (as on a warm server)
    await measure(server.url, { ...load, requests: names.length, outputTokens: 1 }, names);
    for (let r = 0; r < load.repeats; r++) {
      for (const [i, models] of sets.entries()) {
        const p = await measure(server.url, load, models);
        points[i].push(p);
        log(`  repeat ${r + 1}, ${models.length} adapter(s): ${p.overall.output_token_throughput.toFixed(2)} tok/s`);
      }
    }
  } finally {
    await server.stop();
  }
  return sets.map((models, i) => summary(models.length, points[i]));
}
