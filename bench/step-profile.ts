/**
 * `npm run bench:step-profile`: where an engine step's time goes, kernel by kernel. Runs one wave of W3/W4-like
 * requests (32 prompts of 128 tokens, 16 output tokens each; with --adapters N, round-robin over N synthetic
 * rank-16 adapters on all seven projections) through LLMEngine on the native kernels, each kernel call timed
 * (GEMMs by weight shape, with their GFLOP/s), split into the prefill steps (until every prompt has its first
 * token: 4096 prompt tokens at --max-batch-tokens a step, 2048 unless given) and the decode steps after them.
 * Writes OUT.json and prints the table.
 *
 *   npm run bench:step-profile -- [--model DIR] [--adapters 0] [--temperature 1] [--bf16-dot]
 *                                 [--max-batch-tokens 2048] [--lora-dtype auto] [--waves 1] [--out FILE]
 *
 * The default model is the Llama-3.2-1B-shaped bench model (`npm run bench:models`). Temperature 1 samples as
 * the peers' workloads do (no top-k / top-p); temperature 0 is greedy.
 */
import './native-env.ts';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packAdapter } from '../src/adapters/pack.ts';
import { HostBackend } from '../src/backends/host-backend.ts';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../src/engine/llm-engine.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { configureNative } from '../src/kernels/native/config.ts';
import { nativeKernels } from '../src/kernels/native.ts';
import type { Kernels, LoraDtype } from '../src/kernels/types.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import { syntheticAdapter } from './synthetic-adapter.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(cacheRoot(), 'bench-models', 'llama3-1b', 'model') },
    adapters: { type: 'string', default: '0' },
    temperature: { type: 'string', default: '1' },
    'bf16-dot': { type: 'boolean', default: false },
    'max-batch-tokens': { type: 'string', default: '2048' },
    /** Adapter slots' storage (--lora-dtype); auto: bf16 on a bf16 checkpoint. */
    'lora-dtype': { type: 'string', default: 'auto' },
    /** Waves of the workload; only the last is profiled (the ones before warm the slots and the KV cache). */
    waves: { type: 'string', default: '1' },
    out: { type: 'string', default: 'artifacts/step-profile.json' },
  },
});

const PROMPTS = 32;
const PROMPT_TOKENS = 128;
const OUTPUT_TOKENS = 16;
const MAX_BATCH_TOKENS = Number(args['max-batch-tokens']);

type Phase = 'load' | 'prefill' | 'decode';
interface Entry {
  phase: Phase;
  op: string;
  ms: number;
  calls: number;
  flops: number;
}

configureNative({ bf16Dot: args['bf16-dot'] });
const entries = new Map<string, Entry>();
let phase: Phase = 'load';

/** The native kernels, each call timed into `entries` under the current phase. */
function timedKernels(kernels: Kernels): Kernels {
  const timed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(kernels)) {
    if (typeof value !== 'function') {
      timed[name] = value;
      continue;
    }
    timed[name] = (...callArgs: unknown[]) => {
      const t0 = performance.now();
      const result = value.apply(kernels, callArgs);
      const ms = performance.now() - t0;
      let op = name;
      let flops = 0;
      if (name === 'gemm') {
        const w = callArgs[1] as { rows: number; cols: number };
        const m = callArgs[3] as number;
        op = `gemm ${w.rows}×${w.cols}`;
        flops = 2 * m * w.rows * w.cols;
      }
      const key = `${phase} ${op}`;
      const entry = entries.get(key) ?? { phase, op, ms: 0, calls: 0, flops: 0 };
      entry.ms += ms;
      entry.calls++;
      entry.flops += flops;
      entries.set(key, entry);
      return result;
    };
  }
  return timed as unknown as Kernels;
}

const loaded = await loadModelDir(args.model!, { dtype: 'bf16' });
const numAdapters = Number(args.adapters);
const engine = new LLMEngine(loaded, {
  ...DEFAULT_ENGINE_OPTIONS,
  backend: new HostBackend(timedKernels(nativeKernels)),
  maxLoras: Math.max(1, numAdapters),
  maxRunningSeqs: PROMPTS,
  maxBatchTokens: MAX_BATCH_TOKENS,
  kvCacheTokens: PROMPTS * (PROMPT_TOKENS + OUTPUT_TOKENS) + 1024,
  loraDtype: args['lora-dtype'] as LoraDtype | 'auto',
});
for (let i = 0; i < numAdapters; i++) {
  engine.addAdapter(`a${i}`, packAdapter(syntheticAdapter(loaded.config, 16, 1000 + i, `a${i}`), loaded.config));
}
const rng = new SeededRandom(7);
const temperature = Number(args.temperature);
const waves = Number(args.waves);
let stepMs: number[] = [];
let prefillSteps = 0;
// Waves before the last are not profiled (phase `load`): they leave the adapters in their slots and the KV
// cache's pages touched, as a server's warmup requests do before the measured ones.
for (let wave = 1; wave <= waves; wave++) {
  for (let i = 0; i < PROMPTS; i++) {
    engine.addRequest({
      promptIds: Array.from({ length: PROMPT_TOKENS }, () => 1 + Math.floor(rng.uniform() * 1000)),
      adapter: numAdapters > 0 ? `a${i % numAdapters}` : null,
      params: { maxTokens: OUTPUT_TOKENS, minTokens: OUTPUT_TOKENS, temperature, ignoreEos: true },
    });
  }
  const profiled = wave === waves;
  stepMs = [];
  prefillSteps = 0;
  const started = new Set<unknown>(); // sequences with their first token
  phase = profiled ? 'prefill' : 'load';
  while (engine.hasUnfinished()) {
    const t0 = performance.now();
    const outputs = engine.step();
    stepMs.push(performance.now() - t0);
    if (phase !== 'decode') prefillSteps++;
    for (const o of outputs) if (o.newToken !== null) started.add(o.seq);
    if (started.size === PROMPTS && profiled) phase = 'decode';
  }
}

const decodeSteps = stepMs.length - prefillSteps;
const perStep = (e: Entry) => e.ms / (e.phase === 'prefill' ? prefillSteps : decodeSteps);
const rows = [...entries.values()].filter((e) => e.phase !== 'load').sort((a, b) => b.ms - a.ms);
const info = cpuInfo();
const git = (...a: string[]) => execFileSync('git', a, { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
const report = {
  generated: new Date().toISOString(),
  git: `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with changes)' : ''}`,
  model: args.model,
  isa: info.active,
  threads: info.threads,
  bf16Dot: args['bf16-dot'],
  loraDtype: args['lora-dtype'],
  adapters: numAdapters,
  temperature,
  workload: {
    prompts: PROMPTS,
    promptTokens: PROMPT_TOKENS,
    outputTokens: OUTPUT_TOKENS,
    maxBatchTokens: MAX_BATCH_TOKENS,
    prefillSteps,
    waves,
  },
  stepMs,
  ops: rows.map((e) => ({ ...e, msPerStep: perStep(e), gflops: e.flops ? e.flops / e.ms / 1e6 : undefined })),
};
writeFileSync(args.out!, `${JSON.stringify(report, null, 1)}\n`);
console.log(`steps (ms): ${stepMs.map((t) => t.toFixed(0)).join(' ')}`);
for (const e of rows) {
  const rate = e.flops ? `${(e.flops / e.ms / 1e6).toFixed(0)} GFLOP/s` : '';
  console.log(
    `${e.phase.padEnd(8)} ${e.op.padEnd(24)} ${perStep(e).toFixed(1).padStart(8)} ms/step ${String(e.calls).padStart(6)} calls  ${rate}`,
  );
}
console.log(`wrote ${args.out}`);
