/**
 * `npm run bench:gpu-engine`: offline engine throughput on a Llama-3.1-8B-shaped model with random bf16
 * weights, on any backend (cuda by default where it can run, else native): the base alone, one adapter, and
 * 32 and 100 adapters drawn Zipf(α=1) over the requests (rank 16, all seven projections); `concurrency`
 * prompts of `prompt-tokens` random ids in flight at once, `new-tokens` output tokens each (forced: greedy,
 * minTokens = maxTokens, EOS ignored). Ratios (1 adapter / base, 32 and 100 adapters / 1 adapter) come from
 * the same run; workloads take turns round-robin across the repeats so that drift cancels; each figure is
 * the median of --repeats measured runs after one short warm-up per workload.
 *
 *   npm run bench:gpu-engine -- [--backend cuda|native|reference] [--shape llama-3.1-8b|tiny] [--layers N]
 *     [--concurrency 64] [--prompt-tokens 128] [--new-tokens 128] [--repeats 2] [--workloads base,1,32,100]
 *     [--lora-dtype bf16] [--kv-cache-dtype bf16|f32|auto] [--max-batch-tokens 8192] [--time-budget-s S]
 *     [--out result.json]
 *
 * The model is built in memory, no files: the config object below goes through the project's own parser
 * (parseModelConfig), and there is ONE random matrix per distinct shape, the same object in every layer
 * (q_proj and o_proj, k_proj and v_proj, gate_proj and up_proj, embedding and lm_head share theirs), so the
 * host holds ~1.3 GB instead of 16 GB and fills it in seconds. The backend still packs a separate copy per
 * layer (the CUDA backend uploads each; fuseWeights concatenates q|k|v and gate|up per layer), so the bytes
 * a step reads are the real model's. Norm weights are ones.
 *
 * Adapters: one adapter is made (syntheticAdapter) and packed; the others are that packed adapter with their
 * own `scale` array (×(1 + i/100)), sharing its weights Float32Array, so 100 adapters cost the host one
 * adapter's memory. Each holds its own slot of the backend's bank (a device copy on CUDA), so per-adapter
 * bytes read are real too. One engine serves every workload (maxLoras ≥ the most adapters any workload
 * uses: no slot is ever evicted; the warm-up sends each workload's exact requests, so every adapter a
 * measured run uses is in its slot before the clock starts).
 *
 * Output tokens/s = produced tokens / wall time of the run (the loop is generate()'s: add every request,
 * step until all finish). Decode-only tokens/s = tokens produced after the step in which the last prompt
 * finished prefill / time since that step. --time-budget-s: a measured run that would end past the budget
 * (counted from the start of the process, using that workload's last time as the estimate) is skipped and
 * marked skipped in the JSON; --out is rewritten after every run, so a killed run keeps what it measured.
 */
import './native-env.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { packAdapter } from '../src/adapters/pack.ts';
import { CudaBackend } from '../src/backends/cuda-backend.ts';
import { type BackendName, createBackend, cudaAvailability, type KvDtype } from '../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, LLMEngine } from '../src/engine/llm-engine.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import type { Sequence } from '../src/engine/sequence.ts';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import type { LoraDtype, PackedAdapter, WeightMatrix } from '../src/kernels/types.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { parseModelConfig } from '../src/model/config-parse.ts';
import { type ModuleKind, moduleShape } from '../src/model/modules.ts';
import { specOf } from '../src/model/spec/index.ts';
import { type LayerWeights, type LoadedModel, layerNorms } from '../src/model/weights.ts';
import { syntheticAdapter } from './synthetic-adapter.ts';
import { median } from './util.ts';

const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string' },
    shape: { type: 'string', default: 'llama-3.1-8b' },
    layers: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    'prompt-tokens': { type: 'string', default: '128' },
    'new-tokens': { type: 'string', default: '128' },
    'warmup-tokens': { type: 'string', default: '4' },
    repeats: { type: 'string', default: '2' },
    workloads: { type: 'string', default: 'base,1,32,100' },
    rank: { type: 'string', default: '16' },
    'lora-dtype': { type: 'string', default: 'bf16' },
    'kv-cache-dtype': { type: 'string' },
    'max-batch-tokens': { type: 'string', default: '8192' },
    'time-budget-s': { type: 'string' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});

function intArg(name: string, value: string | undefined, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min} (got ${value})`);
  return n;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`--${name} must be one of ${allowed.join(', ')} (got ${value})`);
  }
  return value as T;
}

const cuda = cudaAvailability();
const backendName = oneOf<BackendName>('backend', args.backend ?? (cuda.ok ? 'cuda' : 'native'), [
  'cuda',
  'native',
  'reference',
]);
const shapeName = oneOf('shape', args.shape!, ['llama-3.1-8b', 'tiny'] as const);
const concurrency = intArg('concurrency', args.concurrency);
const promptTokens = intArg('prompt-tokens', args['prompt-tokens']);
const newTokens = intArg('new-tokens', args['new-tokens']);
const warmupTokens = Math.min(newTokens, intArg('warmup-tokens', args['warmup-tokens']));
const repeats = intArg('repeats', args.repeats);
const rank = intArg('rank', args.rank);
const maxBatchTokens = intArg('max-batch-tokens', args['max-batch-tokens']);
const seed = intArg('seed', args.seed, 0);
const loraDtype = oneOf<LoraDtype | 'auto'>('lora-dtype', args['lora-dtype']!, ['bf16', 'f16', 'f32', 'auto']);
const kvCacheDtype = oneOf<KvDtype | 'auto'>(
  'kv-cache-dtype',
  args['kv-cache-dtype'] ?? (backendName === 'cuda' ? 'bf16' : 'auto'),
  ['bf16', 'f32', 'auto'],
);
const timeBudgetS = args['time-budget-s'] === undefined ? Number.POSITIVE_INFINITY : Number(args['time-budget-s']);
if (!(timeBudgetS > 0)) throw new Error(`--time-budget-s must be a positive number (got ${args['time-budget-s']})`);

// ── the model ──────────────────────────────────────────────────────────────────────────────────────────

/** meta-llama/Llama-3.1-8B's config.json (the fields the parser reads). */
const LLAMA_31_8B = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 128,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: {
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  hidden_act: 'silu',
  attention_bias: false,
  mlp_bias: false,
  tie_word_embeddings: false,
  bos_token_id: 128000,
  eos_token_id: 128001,
  torch_dtype: 'bfloat16',
};

/** The same architecture, small enough for a CPU dry run. */
const TINY = {
  ...LLAMA_31_8B,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
  vocab_size: 2048,
  bos_token_id: 1,
  eos_token_id: 2,
};

function modelConfig(): ModelConfig {
  const json: Record<string, unknown> = { ...(shapeName === 'tiny' ? TINY : LLAMA_31_8B) };
  if (args.layers !== undefined) json.num_hidden_layers = intArg('layers', args.layers);
  return parseModelConfig(json, `${shapeName} (in memory)`);
}

/** Random bf16 [rows, cols], uniform in ±0.035 (std ≈ 0.02): 16-bit draws index a table of 65536 values. */
function randomBf16(rows: number, cols: number, matrixSeed: number): WeightMatrix {
  const table = new Uint16Array(65536);
  for (let i = 0; i < table.length; i++) table[i] = f32ToBf16((((i + 0.5) / 65536) * 2 - 1) * 0.035);
  const n = rows * cols;
  const data = new Uint16Array(n);
  let a = (matrixSeed * 0x9e3779b9) >>> 0;
  for (let i = 0; i < n; i += 2) {
    // mulberry32
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t ^= t >>> 14;
    data[i] = table[t & 0xffff];
    if (i + 1 < n) data[i + 1] = table[t >>> 16];
  }
  return { dtype: 'bf16', rows, cols, data };
}

/** One random matrix per distinct shape, the same objects in every layer (see the header). */
function buildModel(config: ModelConfig): LoadedModel {
  const spec = specOf(config.family);
  const byShape = new Map<string, WeightMatrix>();
  const matrix = (rows: number, cols: number) => {
    const key = `${rows}x${cols}`;
    let m = byShape.get(key);
    if (!m) {
      m = randomBf16(rows, cols, seed * 1000 + byShape.size + 1);
      byShape.set(key, m);
    }
    return m;
  };
  const embedding = matrix(config.vocabSize, config.hiddenSize);
  const linear: Partial<Record<ModuleKind, WeightMatrix>> = {};
  for (const m of spec.modules) {
    const { inFeatures, outFeatures } = moduleShape(config, m.kind);
    linear[m.kind] = matrix(outFeatures, inFeatures);
  }
  const ones = (n: number) => new Float32Array(n).fill(1);
  const layers: LayerWeights[] = Array.from({ length: config.numLayers }, () => ({
    linear,
    bias: {},
    norms: Object.fromEntries(layerNorms(config).map((n) => [n.name, ones(n.size)])),
  }));
  const lmHead = config.tieWordEmbeddings ? embedding : matrix(config.vocabSize, config.hiddenSize);
  return {
    dir: `(in memory: ${shapeName})`,
    config,
    weights: { embedding, layers, finalNorm: ones(config.hiddenSize), lmHead },
  };
}

/** Bytes of base weights one decode step reads: every layer's projections and the lm_head. */
function weightBytesPerStep(config: ModelConfig): number {
  const h = config.hiddenSize;
  const perLayer =
    h * (config.numHeads + 2 * config.numKvHeads) * config.headDim +
    config.numHeads * config.headDim * h +
    3 * h * config.intermediateSize;
  return (config.numLayers * perLayer + config.vocabSize * h) * 2;
}

// ── workloads ──────────────────────────────────────────────────────────────────────────────────────────

interface Workload {
  name: string;
  adapters: number; // 0 = base
  /** Per request: the adapter's index, or -1 for the base. */
  assignment: number[];
}

/** Request i's adapter drawn from Zipf(α) over n adapters: P(k) ∝ 1/(k+1)^α. */
function zipfAssignment(n: number, count: number, alpha: number, rngSeed: number): number[] {
  const cdf: number[] = [];
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / (k + 1) ** alpha;
    cdf.push(total);
  }
  const rng = new SeededRandom(rngSeed);
  return Array.from({ length: count }, () => {
    const u = rng.uniform() * total;
    const k = cdf.findIndex((c) => u < c);
    return k < 0 ? n - 1 : k;
  });
}

function makeWorkload(spec: string): Workload {
  if (spec === 'base') return { name: 'base', adapters: 0, assignment: new Array(concurrency).fill(-1) };
  const n = intArg('workloads', spec);
  if (n === 1) return { name: '1 adapter', adapters: 1, assignment: new Array(concurrency).fill(0) };
  return { name: `${n} adapters zipf`, adapters: n, assignment: zipfAssignment(n, concurrency, 1, seed * 7919 + n) };
}

const workloads = args.workloads!.split(',').map((s) => makeWorkload(s.trim()));

function randomPrompts(config: ModelConfig): number[][] {
  const rng = new SeededRandom(seed * 31 + 7);
  return Array.from({ length: concurrency }, () =>
    Array.from({ length: promptTokens }, () => 1 + Math.floor(rng.uniform() * (config.vocabSize - 1))),
  );
}

// ── running ────────────────────────────────────────────────────────────────────────────────────────────

interface Run {
  seconds: number;
  outputTokens: number;
  tokPerS: number;
  /** From the step in which the last prompt finished prefill to the end. */
  prefillSeconds: number;
  decodeSeconds: number;
  decodeSteps: number;
  decodeTokPerS: number;
  steps: number;
}

type RunRecord = ({ repeat: number } & Run) | { repeat: number; skipped: true; reason: string };

/** generate()'s loop (every request added, then steps until all finish), timing the prefill apart. */
function runOnce(
  engine: LLMEngine,
  backend: ReturnType<typeof createBackend>,
  prompts: number[][],
  w: Workload,
  tokens: number,
): Run {
  const sync = () => {
    if (backend instanceof CudaBackend) backend.synchronize();
  };
  sync();
  const t0 = performance.now();
  const seqs: Sequence[] = prompts.map((promptIds, i) =>
    engine.addRequest({
      promptIds,
      adapter: w.assignment[i] < 0 ? null : `a${w.assignment[i]}`,
      params: { maxTokens: tokens, minTokens: tokens, temperature: 0, ignoreEos: true },
    }),
  );
  let tPrefilled = Number.NaN;
  let producedAtPrefill = 0;
  let steps = 0;
  let stepsAtPrefill = 0;
  while (seqs.some((s) => !s.isFinished)) {
    if (!engine.canStep()) throw new Error('the engine waits for adapter loads (every adapter should be resident)');
    engine.step();
    steps++;
    if (Number.isNaN(tPrefilled) && seqs.every((s) => s.outputIds.length > 0)) {
      sync();
      tPrefilled = performance.now();
      producedAtPrefill = seqs.reduce((n, s) => n + s.outputIds.length, 0);
      stepsAtPrefill = steps;
    }
  }
  sync();
  const t1 = performance.now();
  const failed = seqs.find((s) => s.error);
  if (failed) throw new Error(`request ${failed.id} failed: ${failed.error?.message}`);
  const produced = seqs.reduce((n, s) => n + s.outputIds.length, 0);
  if (produced !== prompts.length * tokens)
    throw new Error(`expected ${prompts.length * tokens} tokens, got ${produced}`);
  const seconds = (t1 - t0) / 1000;
  const decodeSeconds = (t1 - tPrefilled) / 1000;
  const decodeTokens = produced - producedAtPrefill;
  return {
    seconds,
    outputTokens: produced,
    tokPerS: produced / seconds,
    prefillSeconds: (tPrefilled - t0) / 1000,
    decodeSeconds,
    decodeSteps: steps - stepsAtPrefill,
    decodeTokPerS: decodeTokens > 0 && decodeSeconds > 0 ? decodeTokens / decodeSeconds : Number.NaN,
    steps,
  };
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch {
    return null;
  }
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const finite = (x: number) => (Number.isFinite(x) ? x : null);

async function main() {
  const config = modelConfig();
  const backend = createBackend(backendName);
  const device = backend instanceof CudaBackend ? backend.device : null;
  console.log(
    `loraplex bench:gpu-engine — ${shapeName}, ${config.numLayers} layers, bf16 random weights, backend ${backend.name}` +
      (device
        ? ` on ${device.name} (sm ${device.computeCapability}, ${(device.memoryBytes / 2 ** 30).toFixed(0)} GiB, ${device.cublas})`
        : '') +
      (!cuda.ok && backendName !== 'cuda' ? ` (cuda: ${cuda.reason})` : ''),
  );
  console.log(
    `workload: ${concurrency} prompts × ${promptTokens} tokens in, ${newTokens} out (forced, greedy); rank ${rank} on all ` +
      `projections; lora ${loraDtype}, kv ${kvCacheDtype}; median of ${repeats}` +
      (Number.isFinite(timeBudgetS) ? `; time budget ${timeBudgetS} s` : ''),
  );

  let t = performance.now();
  const loaded = buildModel(config);
  const weightsS = (performance.now() - t) / 1000;
  const maxAdapters = Math.max(0, ...workloads.map((w) => w.adapters));
  const options: EngineOptions = {
    ...DEFAULT_ENGINE_OPTIONS,
    backend,
    maxLoras: Math.max(1, maxAdapters),
    maxRunningSeqs: Math.max(concurrency, DEFAULT_ENGINE_OPTIONS.maxRunningSeqs),
    maxBatchTokens,
    kvCacheTokens: concurrency * (promptTokens + newTokens) + 64 * DEFAULT_ENGINE_OPTIONS.blockSize,
    maxModelLen: Math.max(DEFAULT_ENGINE_OPTIONS.maxModelLen, promptTokens + newTokens),
    loraDtype,
    kvCacheDtype,
  };
  t = performance.now();
  const engine = new LLMEngine(loaded, options);
  const engineS = (performance.now() - t) / 1000;

  t = performance.now();
  let first: PackedAdapter | null = null;
  if (maxAdapters > 0) {
    first = packAdapter(syntheticAdapter(config, rank, 1000 + seed, 'a0'), config);
    for (let i = 0; i < maxAdapters; i++) {
      const factor = 1 + i / 100;
      engine.addAdapter(`a${i}`, { ...first, scale: first.scale.map((s) => s * factor) });
    }
  }
  const adaptersS = (performance.now() - t) / 1000;
  console.log(
    `setup: weights ${fmt(weightsS, 2)} s, engine (pack/upload) ${fmt(engineS, 2)} s, ${maxAdapters} adapters ` +
      `(${first ? ((first.weights.length * 4) / 2 ** 20).toFixed(0) : 0} MiB f32 each, one host copy) ${fmt(adaptersS, 2)} s`,
  );

  const prompts = randomPrompts(config);
  const records = new Map<string, RunRecord[]>(workloads.map((w) => [w.name, []]));
  const warmups = new Map<string, Run>();
  const bytesPerStep = weightBytesPerStep(config);

  const summary = () => {
    const perWorkload = workloads.map((w) => {
      const runs = records.get(w.name)!.filter((r): r is { repeat: number } & Run => !('skipped' in r));
      return {
        name: w.name,
        adapters: w.adapters,
        distinctAdaptersUsed: new Set(w.assignment.filter((a) => a >= 0)).size,
        warmupSeconds: finite(warmups.get(w.name)?.seconds ?? Number.NaN),
        measuredRuns: runs.length,
        skippedRuns: records.get(w.name)!.length - runs.length,
        tokPerS: finite(median(runs.map((r) => r.tokPerS))),
        decodeTokPerS: finite(median(runs.map((r) => r.decodeTokPerS))),
        decodeStepMs: finite(median(runs.map((r) => (1000 * r.decodeSeconds) / r.decodeSteps))),
        prefillSeconds: finite(median(runs.map((r) => r.prefillSeconds))),
        runs: records.get(w.name)!,
      };
    });
    const tps = (name: string) => perWorkload.find((w) => w.name === name)?.tokPerS ?? null;
    const ratio = (a: string, b: string) => {
      const x = tps(a);
      const y = tps(b);
      return x !== null && y !== null ? x / y : null;
    };
    const ratios = {
      oneAdapterOverBase: ratio('1 adapter', 'base'),
      hundredOverOne: ratio('100 adapters zipf', '1 adapter'),
      thirtyTwoOverOne: ratio('32 adapters zipf', '1 adapter'),
    };
    return { perWorkload, ratios };
  };

  const write = (done: boolean) => {
    if (!args.out) return;
    const { perWorkload, ratios } = summary();
    const { backend: _, ...engineOptions } = options;
    const json = {
      bench: 'gpu-engine',
      done,
      date: new Date().toISOString(),
      commit: gitCommit(),
      argv: process.argv.slice(2),
      backend: backend.name,
      device,
      shape: shapeName,
      config,
      engineOptions,
      workload: { concurrency, promptTokens, newTokens, warmupTokens, repeats, rank, zipfAlpha: 1, seed },
      timeBudgetS: Number.isFinite(timeBudgetS) ? timeBudgetS : null,
      setupSeconds: { weights: weightsS, engine: engineS, adapters: adaptersS },
      weightBytesPerDecodeStep: bytesPerStep,
      elapsedSeconds: elapsedS(),
      workloads: perWorkload,
      ratios,
    };
    mkdirSync(dirname(args.out), { recursive: true });
    writeFileSync(args.out, `${JSON.stringify(json, null, 2)}\n`);
  };

  for (const w of workloads) {
    const run = runOnce(engine, backend, prompts, w, warmupTokens);
    warmups.set(w.name, run);
    console.log(`warm-up ${w.name.padEnd(18)} ${fmt(run.seconds, 2)} s (${warmupTokens} tokens each)`);
  }
  write(false);

  const lastSeconds = new Map<string, number>();
  for (let r = 0; r < repeats; r++) {
    for (const w of workloads) {
      // estimate: this workload's last measured run, else its warm-up's prefill + decode steps at its pace
      const warm = warmups.get(w.name)!;
      const estimate =
        lastSeconds.get(w.name) ??
        (warm.decodeSteps > 0
          ? warm.prefillSeconds + (warm.decodeSeconds / warm.decodeSteps) * (newTokens - 1)
          : warm.seconds * newTokens);
      if (elapsedS() + estimate > timeBudgetS) {
        const reason = `time budget: ${fmt(elapsedS())} s elapsed + ~${fmt(estimate)} s > ${timeBudgetS} s`;
        records.get(w.name)!.push({ repeat: r, skipped: true, reason });
        console.log(`repeat ${r + 1}/${repeats} ${w.name.padEnd(18)} skipped (${reason})`);
        continue;
      }
      const run = runOnce(engine, backend, prompts, w, newTokens);
      lastSeconds.set(w.name, run.seconds);
      records.get(w.name)!.push({ repeat: r, ...run });
      console.log(
        `repeat ${r + 1}/${repeats} ${w.name.padEnd(18)} ${fmt(run.tokPerS).padStart(9)} output tok/s  ` +
          `${fmt(run.decodeTokPerS).padStart(9)} decode tok/s  ${fmt((1000 * run.decodeSeconds) / run.decodeSteps, 2)} ms/decode step  ` +
          `prefill ${fmt(run.prefillSeconds, 3)} s  total ${fmt(run.seconds, 2)} s`,
      );
      write(false);
    }
  }

  const { perWorkload, ratios } = summary();
  console.log('\nworkload             output tok/s  decode tok/s  ms/step  ~base GB/s  runs');
  for (const w of perWorkload) {
    const gbs = w.decodeStepMs ? bytesPerStep / (w.decodeStepMs / 1000) / 1e9 : Number.NaN;
    console.log(
      `${w.name.padEnd(20)} ${fmt(w.tokPerS ?? Number.NaN).padStart(12)}  ${fmt(w.decodeTokPerS ?? Number.NaN).padStart(12)}  ` +
        `${fmt(w.decodeStepMs ?? Number.NaN, 2).padStart(7)}  ${fmt(gbs).padStart(10)}  ${w.measuredRuns}` +
        (w.skippedRuns ? ` (+${w.skippedRuns} skipped)` : ''),
    );
  }
  const r3 = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  console.log(
    `ratios: 1 adapter/base ${r3(ratios.oneAdapterOverBase)}, 100/1 adapters ${r3(ratios.hundredOverOne)}, ` +
      `32/1 adapters ${r3(ratios.thirtyTwoOverOne)}`,
  );
  write(true);
  if (args.out) console.log(`wrote ${args.out}`);
  console.log(`elapsed ${fmt(elapsedS())} s`);
}

await main();
