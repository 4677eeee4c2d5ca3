/**
 * f32 against bf16 KV cache on one checkout's server: SmolLM2-135M (bf16 weights), concurrency C over N
 * rank-16 adapters round-robin, fixed input / output lengths. Both servers stay up; the load alternates between them
 * (f32 bf16, bf16 f32, …) so drift cancels in the per-pair ratios. Also the KV bytes per token of each
 * dtype, from the backend's KvCache for the model's shape (what the engine allocates).
 */
import { join } from 'node:path';
import { createBackend } from '../../src/backends/index.ts';
import type { KvDtype } from '../../src/backends/types.ts';
import { DEFAULT_OPTIONS } from '../../src/bench/options.ts';
import { runBench } from '../../src/bench/run-bench.ts';
import { cacheRoot } from '../../src/demo/demo-model.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { readModelConfig } from '../../src/model/model-dir.ts';
import { adapterName, ensureSyntheticStore } from '../peft-store.ts';
import { startServer } from '../serve-child.ts';
import type { Metrics } from './engine-run.ts';
import { type Comparison, comparePairs } from './paired.ts';

export interface KvDtypeOptions {
  dir: string;
  pairs: number;
  concurrency: number;
  adapters: number;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  port: number;
}

export interface KvDtypeResult {
  model: string;
  load: { concurrency: number; adapters: number; requests: number; inputTokens: number; outputTokens: number };
  bytesPerToken: Record<KvDtype, number>;
  comparisons: Comparison[];
}

export function kvBytesPerToken(config: ModelConfig, dtype: KvDtype): number {
  const kv = createBackend('native').createKvCache({
    numLayers: config.numLayers,
    numBlocks: 1,
    blockSize: 16,
    rowWidth: config.numKvHeads * config.headDim,
    dtype,
  });
  return kv.bytesPerToken;
}

async function measure(url: string, models: string[], o: KvDtypeOptions): Promise<Metrics> {
  const { result } = await runBench({
    ...DEFAULT_OPTIONS,
    url,
    endpointType: 'completions',
    models,
    modelSelectionStrategy: 'round_robin',
    concurrency: [o.concurrency],
    requestCount: o.requests,
    warmupRequestCount: o.concurrency,
    inputTokens: { mean: o.inputTokens, stddev: 0 },
    outputTokens: { mean: o.outputTokens, stddev: 0 },
    useServerTokenCount: true,
    progress: 'off',
    seed: 1,
  });
  const { overall } = result.points[0];
  if (overall.error_request_count > 0) throw new Error(`${overall.error_request_count} requests failed`);
  return {
    'output tok/s': overall.output_token_throughput,
    'TTFT p50 ms': overall.stats.time_to_first_token?.p50 ?? Number.NaN,
    'ITL p50 ms': overall.stats.inter_token_latency?.p50 ?? Number.NaN,
  };
}

export async function compareKvDtypes(o: KvDtypeOptions): Promise<KvDtypeResult> {
  const model = join(cacheRoot(), 'smollm2', 'model-bf16');
  const config = await readModelConfig(model);
  const store = await ensureSyntheticStore(join(cacheRoot(), 'bench-stores', 'smollm2'), config, o.adapters, 16);
  const names = Array.from({ length: o.adapters }, (_, i) => adapterName(i));
  const flags = (dtype: KvDtype) => [
    '--model',
    model,
    '--lora-dir',
    store,
    '--max-loras',
    String(Math.min(o.concurrency, o.adapters)),
    '--max-cpu-loras',
    String(o.adapters),
    '--kv-cache-dtype',
    dtype,
  ];
  const f32 = await startServer(o.dir, o.port, flags('f32'));
  const bf16 = await startServer(o.dir, o.port + 1, flags('bf16')).catch(async (e) => {
    await f32.stop();
    throw e;
  });
  const pairs: { a: Metrics; b: Metrics }[] = [];
  try {
    for (let i = 0; i < o.pairs; i++) {
      const first = i % 2 === 0 ? 'f32' : 'bf16';
      const one = await measure(first === 'f32' ? f32.url : bf16.url, names, o);
      const two = await measure(first === 'f32' ? bf16.url : f32.url, names, o);
      const pair = first === 'f32' ? { a: one, b: two } : { a: two, b: one };
      pairs.push(pair);
      console.error(
        `kv pair ${i + 1}: f32 ${pair.a['output tok/s'].toFixed(1)} tok/s, bf16 ${pair.b['output tok/s'].toFixed(1)} tok/s`,
      );
    }
  } finally {
    await f32.stop();
    await bf16.stop();
  }
  return {
    model,
    load: {
      concurrency: o.concurrency,
      adapters: o.adapters,
      requests: o.requests,
      inputTokens: o.inputTokens,
      outputTokens: o.outputTokens,
    },
    bytesPerToken: { f32: kvBytesPerToken(config, 'f32'), bf16: kvBytesPerToken(config, 'bf16') },
    comparisons: comparePairs(pairs),
  };
}
