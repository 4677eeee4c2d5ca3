/**
 * `npm run bench:engine`: offline throughput on SmolLM2-135M (f32 and bf16) — 64 prompts of 128 tokens,
 * 64 output tokens each — for the base alone, one adapter, 8, 32 and 100 distinct adapters (rank 16, all
 * seven targets) and one adapter merged into the weights; plus batch-1 decode against memory bandwidth.
 * Ratios are measured in the same run; each figure is the median of --repeats runs.
 *
 *   npm run bench:engine -- [--model DIR] [--dtypes f32,bf16] [--repeats 3] [--prompts 64] [--quick]
 */
import './native-env.ts';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mergeAdapterIntoWeights } from '../src/adapters/merge.ts';
import { packAdapter } from '../src/adapters/pack.ts';
import { createBackend } from '../src/backends/index.ts';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../src/engine/llm-engine.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import type { WeightDType } from '../src/kernels/types.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import type { LoadedModel } from '../src/model/weights.ts';
import { measureMachine } from './machine.ts';
import { syntheticAdapter } from './synthetic-adapter.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    dtypes: { type: 'string', default: 'f32,bf16' },
    repeats: { type: 'string', default: '3' },
    prompts: { type: 'string', default: '64' },
    'input-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
  },
});

const modelDir = args.model ?? join(cacheRoot(), 'smollm2', 'model');
const repeats = args.quick ? 1 : Number(args.repeats);
const numPrompts = Number(args.prompts);
const inputTokens = Number(args['input-tokens']);
const outputTokens = Number(args['output-tokens']);
const RANK = 16;
const backend = createBackend('native');

function prompts(config: ModelConfig): number[][] {
  const rng = new SeededRandom(7);
  return Array.from({ length: numPrompts }, () =>
    Array.from({ length: inputTokens }, () => 1 + Math.floor(rng.uniform() * (config.vocabSize - 1))),
  );
}

interface Workload {
  name: string;
  adapters: number; // distinct adapters used round-robin; 0 = base
  merged?: boolean;
}

const WORKLOADS: Workload[] = [
  { name: 'base', adapters: 0 },
  { name: '1 adapter', adapters: 1 },
  { name: '8 adapters', adapters: 8 },
  { name: '32 adapters', adapters: 32 },
  { name: '100 adapters', adapters: 100 },
  { name: '1 merged', adapters: 0, merged: true },
];

function makeEngine(loaded: LoadedModel, adapters: number): LLMEngine {
  const engine = new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend,
    maxLoras: Math.max(1, Math.min(adapters, 128)),
    maxBatchTokens: 2048,
    maxRunningSeqs: Math.max(numPrompts, 1),
    kvCacheTokens: numPrompts * (inputTokens + outputTokens) + 1024,
  });
  for (let i = 0; i < adapters; i++) {
    engine.addAdapter(`a${i}`, packAdapter(syntheticAdapter(loaded.config, RANK, 1000 + i, `a${i}`), loaded.config));
  }
  return engine;
}

function runOnce(engine: LLMEngine, promptIds: number[][], adapters: number): number {
  const t0 = performance.now();
  const seqs = engine.generate(
    promptIds.map((p, i) => ({
      promptIds: p,
      adapter: adapters > 0 ? `a${i % adapters}` : null,
      params: { maxTokens: outputTokens, minTokens: outputTokens, temperature: 0, ignoreEos: true },
    })),
  );
  const seconds = (performance.now() - t0) / 1000;
  const produced = seqs.reduce((n, s) => n + s.outputIds.length, 0);
  if (produced !== promptIds.length * outputTokens)
    throw new Error(`expected ${promptIds.length * outputTokens} tokens, got ${produced}`);
  return seconds;
}

/** Median time of one decode step of a single sequence (after a short prompt). */
function batch1DecodeSeconds(engine: LLMEngine, steps: number): number {
  const times: number[] = [];
  const seq = engine.addRequest({
    promptIds: [1, 2, 3, 4],
    adapter: null,
    params: { maxTokens: steps + 1, temperature: 0, ignoreEos: true },
  });
  engine.step(); // prefill
  while (!seq.isFinished) {
    const t0 = performance.now();
    engine.step();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

function weightBytes(config: ModelConfig, dtype: WeightDType): number {
  const bytes = dtype === 'f32' ? 4 : 2;
  const h = config.hiddenSize;
  const perLayer =
    h * (config.numHeads + 2 * config.numKvHeads) * config.headDim +
    config.numHeads * config.headDim * h +
    3 * h * config.intermediateSize;
  // decode reads every layer's projections and the lm_head (the embedding row read is negligible)
  return (config.numLayers * perLayer + config.vocabSize * h) * bytes;
}

async function main() {
  const info = cpuInfo();
  console.log(`loraplex bench:engine — ${modelDir}`);
  console.log(`CPU: best ISA ${info.best}, ${info.threads} threads`);
  const machine = measureMachine();
  console.log(
    `machine: ${machine.readGBs.toFixed(1)} GB/s memory read, ${machine.f32Gflops.toFixed(0)} GFLOP/s f32 FMA` +
      (machine.bf16Gflops ? `, ${machine.bf16Gflops.toFixed(0)} GFLOP/s bf16 dot` : ''),
  );
  console.log(
    `workload: ${numPrompts} prompts × ${inputTokens} tokens in, ${outputTokens} tokens out, greedy; median of ${repeats}\n`,
  );

  for (const dtype of args.dtypes!.split(',') as WeightDType[]) {
    const loaded = await loadModelDir(modelDir, { dtype });
    const promptIds = prompts(loaded.config);
    const results = new Map<string, number>();
    console.log(`── ${dtype}`);
    for (const w of WORKLOADS) {
      let engine: LLMEngine;
      if (w.merged) {
        const adapter = syntheticAdapter(loaded.config, RANK, 1000, 'a0');
        engine = makeEngine({ ...loaded, weights: mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config) }, 0);
      } else {
        engine = makeEngine(loaded, w.adapters);
      }
      runOnce(engine, promptIds.slice(0, Math.min(4, numPrompts)), w.adapters); // warm-up
      const times = Array.from({ length: repeats }, () => runOnce(engine, promptIds, w.adapters));
      const tps = (numPrompts * outputTokens) / median(times);
      const totalTps = (numPrompts * (inputTokens + outputTokens)) / median(times);
      results.set(w.name, tps);
      console.log(
        `${w.name.padEnd(14)} ${tps.toFixed(1).padStart(8)} output tok/s   ${totalTps.toFixed(0).padStart(6)} total tok/s   ` +
          `(${median(times).toFixed(2)} s; runs ${times.map((t) => t.toFixed(2)).join(', ')})`,
      );
    }
    const r = (a: string, b: string) => results.get(a)! / results.get(b)!;
    console.log(
      `ratios: 100/1 adapters ${r('100 adapters', '1 adapter').toFixed(3)} (aim ≥ 0.9), ` +
        `32/1 ${r('32 adapters', '1 adapter').toFixed(3)}, 8/1 ${r('8 adapters', '1 adapter').toFixed(3)}, ` +
        `1 adapter/base ${r('1 adapter', 'base').toFixed(3)} (aim ≥ 0.9), merged/base ${r('1 merged', 'base').toFixed(3)}`,
    );
    const base = makeEngine(loaded, 0);
    const step = batch1DecodeSeconds(base, args.quick ? 16 : 48);
    const bytes = weightBytes(loaded.config, dtype);
    const gbs = bytes / step / 1e9;
    console.log(
      `batch-1 decode: ${(step * 1000).toFixed(2)} ms/token (${(1 / step).toFixed(1)} tok/s), ` +
        `${(bytes / 1e6).toFixed(0)} MB of weights/step → ${gbs.toFixed(1)} GB/s = ${((100 * gbs) / machine.readGBs).toFixed(0)}% of measured read bandwidth (aim ≥ 60%)\n`,
    );
  }
}

await main();
