/**
 * `npm run bench:serving`: the serving path end to end — `loraplex serve` as a child process, loaded over
 * HTTP by `loraplex bench` (streaming completions, fixed input/output lengths). Two modes:
 *
 *   --mode ratios  (default) SmolLM2-135M at concurrency 32, 128 in / 64 out: the base, one adapter, 100
 *                  distinct adapters with Zipf(1) popularity (--adapters 100,1000: one such workload per count),
 *                  and one adapter merged into the weights; workloads interleaved per repeat so drift cancels;
 *                  medians and the ratios. The host tier holds every adapter unless --host-loras is smaller:
 *                  then the popular ones stay there and the rest load from the store when asked.
 *   --mode sweep   throughput and TTFT at concurrency 1, 8, 32 with 1 and 16 adapters, on the demo model and on
 *                  SmolLM2-135M.
 *   --mode kinds   adapter kinds side by side on one server (SmolLM2-135M, concurrency 32): one LoRA adapter, one
 *                  DoRA and one VeRA adapter of the same rank, 32 LoRA adapters, 32 adapters of mixed kinds (LoRA,
 *                  DoRA, VeRA round-robin); the DoRA cost ratio (aim ≤ 1.10) and mixed kinds / plain LoRA (aim ≥ 0.9).
 *   --mode latency latency-aware chunked prefill: 32 adapters at concurrency 32, one server per point,
 *                  interleaved: TTFT and ITL against throughput. The points: each --budgets value
 *                  (--max-batch-tokens) with no step-time target, then the first budget with each --targets
 *                  value (--step-time-target-ms; an empty list: none). --server-args adds flags to every
 *                  server (--server-args=--bf16-dot: with "=", as the value starts with a dash).
 *
 *   npm run bench:serving -- [--mode ratios|sweep|kinds|latency|charts] [--model DIR] [--repeats 3] [--requests 128]
 *                             [--adapters 100[,1000]] [--host-loras N] [--targets 25,50,100]
 *                             [--budgets 2048[,512,…]] [--server-args=--bf16-dot]
 *
 * --mode charts redraws the SVG charts (artifacts/serving/*.svg) from the saved results of the other two modes.
 * Synthetic adapters (rank 16 on all seven projections) are written once under the cache. Results go to
 * artifacts/serving/<mode>.json; the tables print as markdown for docs/benchmarks.md.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { barChart } from '../src/bench/charts/bar-chart.ts';
import { lineChart } from '../src/bench/charts/line-chart.ts';
import { DEFAULT_OPTIONS } from '../src/bench/options.ts';
import type { PointResult } from '../src/bench/result.ts';
import { runBench } from '../src/bench/run-bench.ts';
import { cacheRoot, ensureDemo } from '../src/demo/demo-model.ts';
import { loadModelDir, readModelConfig } from '../src/model/model-dir.ts';
import { measureMachine } from './machine.ts';
import { adapterName, ensureKindsStore, ensureSyntheticStore, kindAdapterName } from './peft-store.ts';
import { type Server, startServer as startChildServer } from './serve-child.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'ratios' },
    model: { type: 'string' },
    repeats: { type: 'string', default: '3' },
    requests: { type: 'string', default: '128' },
    adapters: { type: 'string', default: '100' },
    'host-loras': { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    'input-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '64' },
    rank: { type: 'string', default: '16' },
    port: { type: 'string', default: '18600' },
    targets: { type: 'string', default: '25,50,100' },
    budgets: { type: 'string', default: '2048' },
    'server-args': { type: 'string', default: '' },
  },
});

const ROOT = join(import.meta.dirname, '..');
const RANK = Number(args.rank);
const INPUT = Number(args['input-tokens']);
const OUTPUT = Number(args['output-tokens']);
const smollm2 = args.model ?? join(cacheRoot(), 'smollm2', 'model-bf16');
let nextPort = Number(args.port);

function startServer(flags: string[]): Promise<Server> {
  return startChildServer(ROOT, nextPort++, flags);
}

interface Load {
  models: string[];
  strategy?: 'round_robin' | 'zipf';
  concurrency: number;
  requests: number;
  warmup: number;
  /** Output tokens per request (default --output-tokens). */
  outputTokens?: number;
  /**
   * Answers with no text count as served (touchAll: one sampled token may be a special token, which the answer's
   * text leaves out, and the adapter was loaded all the same).
   */
  emptyIsServed?: boolean;
}

async function measure(url: string, load: Load): Promise<PointResult> {
  const { result } = await runBench({
    ...DEFAULT_OPTIONS,
    url,
    endpointType: 'completions',
    models: load.models,
    modelSelectionStrategy: load.strategy ?? 'round_robin',
    zipfAlpha: 1,
    concurrency: [load.concurrency],
    requestCount: load.requests,
    warmupRequestCount: load.warmup,
    inputTokens: { mean: INPUT, stddev: 0 },
    outputTokens: { mean: load.outputTokens ?? OUTPUT, stddev: 0 },
    useServerTokenCount: true,
    progress: 'off',
    seed: 1,
  });
  const point = result.points[0];
  const failures = point.overall.errors.filter((e) => !(load.emptyIsServed && e.kind === 'empty'));
  if (failures.length > 0) {
    const count = failures.reduce((sum, e) => sum + e.count, 0);
    throw new Error(`${count} requests failed: ${JSON.stringify(failures)}`);
  }
  return point;
}

/**
 * Every adapter once, so the measured run finds them in the host cache (as a warm server would); least popular
 * first, so that a host tier smaller than the store keeps the popular head (Zipf ranks follow the names' order).
 */
async function touchAll(url: string, names: string[]) {
  const load = {
    models: [...names].reverse(),
    concurrency: 8,
    requests: names.length,
    warmup: 0,
    outputTokens: 1,
    emptyIsServed: true,
  };
  await measure(url, load);
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);

async function ratios() {
  const repeats = Number(args.repeats);
  const requests = Number(args.requests);
  const concurrency = Number(args.concurrency);
  const counts = args.adapters.split(',').map(Number);
  const numAdapters = Math.max(...counts);
  const hostLoras = Number(args['host-loras'] ?? numAdapters);
  const config = await readModelConfig(smollm2);
  const store = await ensureSyntheticStore(join(cacheRoot(), 'bench-stores', 'smollm2'), config, numAdapters, RANK);
  const names = Array.from({ length: numAdapters }, (_, i) => adapterName(i));
  console.error(`machine: measuring peaks…`);
  const machine = measureMachine();
  console.error(JSON.stringify(machine));

  const served = await startServer([
    '--model',
    smollm2,
    '--lora-dir',
    store,
    '--max-loras',
    String(Math.min(concurrency, numAdapters)),
    '--max-cpu-loras',
    String(hostLoras),
  ]);
  const merged = await startServer(['--model', smollm2, '--merge-adapter', join(store, names[0])]);
  const warmup = Math.max(8, concurrency);
  const workloads: Workload[] = [
    { name: 'base', url: served.url, load: { models: ['SmolLM2'], concurrency, requests, warmup } },
    { name: '1 adapter', url: served.url, load: { models: [names[0]], concurrency, requests, warmup } },
    ...counts.map((n) => ({
      name: `${n} adapters (Zipf α=1)`,
      url: served.url,
      load: { models: names.slice(0, n), strategy: 'zipf' as const, concurrency, requests, warmup },
    })),
    { name: '1 merged', url: merged.url, load: { models: [names[0]], concurrency, requests, warmup } },
  ];
  const many = workloads.filter((w) => w.name.endsWith('(Zipf α=1)'));
  // The base's served name is the model folder's.
  workloads[0].load.models = [smollm2.split('/').pop()!];
  let results: Map<string, PointResult[]>;
  try {
    await touchAll(served.url, names);
    results = await interleaved(workloads, repeats);
  } finally {
    await served.stop();
    await merged.stop();
  }

  const tput = (name: string) => median(results.get(name)!.map((p) => p.overall.output_token_throughput));
  const stat = (name: string, metric: 'time_to_first_token' | 'inter_token_latency', q: 'p50' | 'p99') =>
    median(results.get(name)!.map((p) => p.overall.stats[metric]?.[q] ?? Number.NaN));
  const lines = [
    `SmolLM2-135M (${config.dtype}, ${smollm2}), concurrency ${concurrency}, ${INPUT} in / ${OUTPUT} out, ` +
      `${requests} requests per run, median of ${repeats}; rank-${RANK} adapters on all 7 projections; host tier ` +
      `${hostLoras} adapters (--max-cpu-loras), kernel slots ${Math.min(concurrency, numAdapters)}`,
    '',
    '| workload | output tok/s | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) |',
    '|---|---|---|---|---|---|',
    ...workloads.map(
      (w) =>
        `| ${w.name} | ${fmt(tput(w.name))} | ${fmt(stat(w.name, 'time_to_first_token', 'p50'))} | ` +
        `${fmt(stat(w.name, 'time_to_first_token', 'p99'))} | ${fmt(stat(w.name, 'inter_token_latency', 'p50'))} | ` +
        `${fmt(stat(w.name, 'inter_token_latency', 'p99'))} |`,
    ),
    '',
    ...many.map((w) => `- ${w.name} / 1 adapter: **${(tput(w.name) / tput('1 adapter')).toFixed(3)}**`),
    `- 1 adapter / base: **${(tput('1 adapter') / tput('base')).toFixed(3)}** (aim ≥ 0.9)`,
    `- 1 merged / base: **${(tput('1 merged') / tput('base')).toFixed(3)}** (aim ≥ 0.95)`,
    `- machine: ${machine.threads} threads, ${machine.isa}, read ${fmt(machine.readGBs)} GB/s, f32 FMA ` +
      `${fmt(machine.f32Gflops, 0)} GFLOP/s, bf16 dot ${fmt(machine.bf16Gflops, 0)} GFLOP/s`,
  ];
  await save('ratios', { machine, config, results: Object.fromEntries(results) }, lines);
}

async function sweep() {
  const requestsAt = (c: number) => Math.max(16, 4 * c);
  const demo = await ensureDemo();
  const demoStore = await ensureSyntheticStore(
    join(cacheRoot(), 'bench-stores', 'demo'),
    await readModelConfig(demo.modelDir),
    16,
    RANK,
  );
  const smolStore = await ensureSyntheticStore(
    join(cacheRoot(), 'bench-stores', 'smollm2'),
    await readModelConfig(smollm2),
    Math.max(16, Number(args.adapters)),
    RANK,
  );
  const names = Array.from({ length: 16 }, (_, i) => adapterName(i));
  const lines = [
    `Streaming completions, ${INPUT} in / ${OUTPUT} out, requests per point = max(16, 4 × concurrency); ` +
      `rank-${RANK} adapters on all 7 projections, round-robin`,
    '',
    '| model | adapters | concurrency | output tok/s | requests/s | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const all: Record<string, PointResult> = {};
  for (const [label, model, store] of [
    ['demo', demo.modelDir, demoStore],
    ['SmolLM2-135M', smollm2, smolStore],
  ] as const) {
    const server = await startServer(['--model', model, '--lora-dir', store, '--max-loras', '16']);
    try {
      await touchAll(server.url, names);
      for (const count of [1, 16]) {
        for (const concurrency of [1, 8, 32]) {
          const p = await measure(server.url, {
            models: names.slice(0, count),
            concurrency,
            requests: requestsAt(concurrency),
            warmup: Math.min(8, concurrency),
          });
          all[`${label}/${count}/${concurrency}`] = p;
          const s = p.overall.stats;
          const line =
            `| ${label} | ${count} | ${concurrency} | ${fmt(p.overall.output_token_throughput)} | ` +
            `${fmt(p.overall.request_throughput, 2)} | ${fmt(s.time_to_first_token?.p50 ?? Number.NaN)} | ` +
            `${fmt(s.time_to_first_token?.p99 ?? Number.NaN)} | ${fmt(s.inter_token_latency?.p50 ?? Number.NaN)} |`;
          lines.push(line);
          console.error(line);
        }
      }
    } finally {
      await server.stop();
    }
  }
  await save('sweep', all, lines);
}

type Workload = { name: string; url: string; load: Load };

/** Every workload once per repeat, in turn, so drift spreads over all of them; the points by workload. */
/**
 * Every workload once per repeat, the order rotated by one each repeat so that drift within a repeat (the machine
 * slowing as it runs) does not always land on the same workload.
 */
async function interleaved(workloads: Workload[], repeats: number): Promise<Map<string, PointResult[]>> {
  const results = new Map<string, PointResult[]>(workloads.map((w) => [w.name, []]));
  for (let r = 0; r < repeats; r++) {
    const start = r % workloads.length;
    for (const w of [...workloads.slice(start), ...workloads.slice(0, start)]) {
      const point = await measure(w.url, w.load);
      results.get(w.name)!.push(point);
      console.error(
        `repeat ${r + 1} ${w.name}: ${fmt(point.overall.output_token_throughput)} tok/s, TTFT p50 ` +
          `${fmt(point.overall.stats.time_to_first_token?.p50 ?? Number.NaN)} ms, ITL p50 ` +
          `${fmt(point.overall.stats.inter_token_latency?.p50 ?? Number.NaN)} ms, ITL p99 ` +
          `${fmt(point.overall.stats.inter_token_latency?.p99 ?? Number.NaN)} ms`,
      );
    }
  }
  return results;
}

type LatencyMetric = 'time_to_first_token' | 'inter_token_latency';

/** Medians over repeats: throughput and latency percentiles of one workload. */
function summary(points: PointResult[]) {
  const m = (f: (p: PointResult) => number | undefined) => median(points.map((p) => f(p) ?? Number.NaN));
  const stat = (metric: LatencyMetric, q: 'p50' | 'p99') => m((p) => p.overall.stats[metric]?.[q]);
  return {
    tokPerS: m((p) => p.overall.output_token_throughput),
    ttftP50: stat('time_to_first_token', 'p50'),
    ttftP99: stat('time_to_first_token', 'p99'),
    itlP50: stat('inter_token_latency', 'p50'),
    itlP99: stat('inter_token_latency', 'p99'),
  };
}

function latencyTable(rows: [string, ReturnType<typeof summary>][]): string[] {
  return [
    '| workload | output tok/s | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      ([name, s]) =>
        `| ${name} | ${fmt(s.tokPerS)} | ${fmt(s.ttftP50)} | ${fmt(s.ttftP99)} | ${fmt(s.itlP50)} | ${fmt(s.itlP99)} |`,
    ),
  ];
}

async function kinds() {
  const repeats = Number(args.repeats);
  const requests = Number(args.requests);
  const concurrency = Number(args.concurrency);
  const config = await readModelConfig(smollm2);
  const count = 32;
  const stores = join(cacheRoot(), 'bench-stores', 'smollm2');
  const store = await ensureKindsStore(stores, await loadModelDir(smollm2), count, RANK);
  const lora = Array.from({ length: count }, (_, i) => kindAdapterName('lora', i));
  const dora = Array.from({ length: count }, (_, i) => kindAdapterName('dora', i));
  const vera = Array.from({ length: count }, (_, i) => kindAdapterName('vera', i));
  const mixed = Array.from({ length: count }, (_, i) => [lora, dora, vera][i % 3][i]);
  const server = await startServer([
    '--model',
    smollm2,
    '--lora-dir',
    store,
    '--max-loras',
    String(count),
    '--max-cpu-loras',
    String(3 * count),
  ]);
  const warmup = Math.max(8, concurrency);
  const at = (models: string[]): Load => ({ models, concurrency, requests, warmup });
  const workloads: Workload[] = [
    { name: '1 LoRA', url: server.url, load: at([lora[0]]) },
    { name: '1 DoRA', url: server.url, load: at([dora[0]]) },
    { name: '1 VeRA', url: server.url, load: at([vera[0]]) },
    { name: `${count} LoRA`, url: server.url, load: at(lora) },
    { name: `${count} mixed (LoRA + DoRA + VeRA)`, url: server.url, load: at(mixed) },
  ];
  let results: Map<string, PointResult[]>;
  try {
    await touchAll(server.url, [...lora, ...dora, ...vera]);
    results = await interleaved(workloads, repeats);
  } finally {
    await server.stop();
  }
  const s = (name: string) => summary(results.get(name)!);
  const lines = [
    `SmolLM2-135M (${config.dtype}), concurrency ${concurrency}, ${INPUT} in / ${OUTPUT} out, ${requests} requests ` +
      `per run, median of ${repeats}; rank-${RANK} adapters on all 7 projections (DoRA: PEFT use_dora; VeRA: PEFT ` +
      `VERA, r ${RANK}, shared A/B once per slot plus λd/λb per module)`,
    '',
    ...latencyTable(workloads.map((w) => [w.name, s(w.name)])),
    '',
    `- cost of a DoRA adapter / a LoRA adapter (throughput of 1 LoRA / 1 DoRA): ` +
      `**${(s('1 LoRA').tokPerS / s('1 DoRA').tokPerS).toFixed(3)}** (aim ≤ 1.10)`,
    `- cost of a VeRA adapter / a LoRA adapter: **${(s('1 LoRA').tokPerS / s('1 VeRA').tokPerS).toFixed(3)}**`,
    `- ${count} mixed kinds / ${count} LoRA: **${(s(workloads[4].name).tokPerS / s(workloads[3].name).tokPerS).toFixed(3)}** (aim ≥ 0.9)`,
  ];
  await save('kinds', { config, results: Object.fromEntries(results) }, lines);
}

async function latency() {
  const repeats = Number(args.repeats);
  const requests = Number(args.requests);
  const concurrency = Number(args.concurrency);
  const config = await readModelConfig(smollm2);
  const count = 32;
  const store = await ensureSyntheticStore(join(cacheRoot(), 'bench-stores', 'smollm2'), config, 100, RANK);
  const names = Array.from({ length: count }, (_, i) => adapterName(i));
  const list = (value: string) =>
    value
      .split(',')
      .filter((v) => v.trim() !== '')
      .map(Number);
  const budgets = list(args.budgets);
  const targets = list(args.targets);
  const points = [
    ...budgets.map((budget) => ({ budget, target: 0 })),
    ...targets.map((target) => ({ budget: budgets[0], target })),
  ];
  const serverArgs = args['server-args'].split(' ').filter((a) => a !== '');
  const servers: Server[] = [];
  const workloads: Workload[] = [];
  try {
    for (const { budget, target } of points) {
      const server = await startServer([
        '--model',
        smollm2,
        '--lora-dir',
        store,
        '--max-loras',
        String(count),
        '--max-batch-tokens',
        String(budget),
        '--step-time-target-ms',
        String(target),
        ...serverArgs,
      ]);
      servers.push(server);
      workloads.push({
        name: `${budget} tokens${target === 0 ? '' : `, ${target} ms`}`,
        url: server.url,
        load: { models: names, concurrency, requests, warmup: Math.max(8, concurrency) },
      });
    }
    for (const w of workloads) await touchAll(w.url, names);
    const results = await interleaved(workloads, repeats);
    const rows = workloads.map((w) => [w.name, summary(results.get(w.name)!)] as [string, ReturnType<typeof summary>]);
    const off = rows[0][1];
    const lines = [
      `SmolLM2-135M (${config.dtype}), ${count} adapters round-robin at concurrency ${concurrency}, ${INPUT} in / ` +
        `${OUTPUT} out, ${requests} requests per run, median of ${repeats}; each row a server with ` +
        `--max-batch-tokens (tokens) and --step-time-target-ms (ms) where given${serverArgs.length ? `, all with ${serverArgs.join(' ')}` : ''}`,
      '',
      ...latencyTable(rows),
      '',
      ...rows
        .slice(1)
        .map(
          ([name, s]) =>
            `- ${name}: throughput ×${(s.tokPerS / off.tokPerS).toFixed(3)}, TTFT p50 ×${(s.ttftP50 / off.ttftP50).toFixed(2)}, ` +
            `ITL p99 ×${(s.itlP99 / off.itlP99).toFixed(2)}, ITL p99/p50 ${(s.itlP99 / s.itlP50).toFixed(2)} (${rows[0][0]}: ` +
            `${(off.itlP99 / off.itlP50).toFixed(2)})`,
        ),
    ];
    await save('latency', { config, points, serverArgs, results: Object.fromEntries(results) }, lines);
  } finally {
    for (const s of servers) await s.stop();
  }
}

async function save(mode: string, data: unknown, lines: string[]) {
  const dir = join(ROOT, 'artifacts', 'serving');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${mode}.json`), `${JSON.stringify(data, null, 2)}\n`);
  await writeFile(join(dir, `${mode}.md`), `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
}

/** Charts of the saved results: throughput and TTFT against concurrency per model, and the ratio workloads. */
async function charts() {
  const dir = join(ROOT, 'artifacts', 'serving');
  const files: [string, string][] = [];
  const sweepJson = await readFile(join(dir, 'sweep.json'), 'utf8').catch(() => null);
  if (sweepJson) {
    const points = JSON.parse(sweepJson) as Record<string, PointResult>;
    const levels = [1, 8, 32];
    for (const model of ['demo', 'SmolLM2-135M']) {
      const series = (metric: (p: PointResult) => number | null) =>
        [1, 16].map((count) => ({
          name: `${count} adapter${count > 1 ? 's' : ''}`,
          values: levels.map((c) => {
            const p = points[`${model}/${count}/${c}`];
            return p ? metric(p) : null;
          }),
        }));
      const slug = model === 'demo' ? 'demo' : 'smollm2';
      files.push([
        `serving-throughput-${slug}.svg`,
        lineChart({
          title: `${model}: output token throughput (128 in / 64 out)`,
          xLabel: 'concurrency',
          yLabel: 'output tokens/s',
          categories: levels.map(String),
          series: series((p) => p.overall.output_token_throughput),
        }),
      ]);
      files.push([
        `serving-ttft-${slug}.svg`,
        lineChart({
          title: `${model}: time to first token, p50`,
          xLabel: 'concurrency',
          yLabel: 'TTFT p50 (ms)',
          categories: levels.map(String),
          series: series((p) => p.overall.stats.time_to_first_token?.p50 ?? null),
        }),
      ]);
    }
  }
  const ratiosJson = await readFile(join(dir, 'ratios.json'), 'utf8').catch(() => null);
  if (ratiosJson) {
    const { results } = JSON.parse(ratiosJson) as { results: Record<string, PointResult[]> };
    const names = Object.keys(results);
    const med = (name: string, f: (p: PointResult) => number) => median(results[name].map(f));
    files.push([
      'serving-mixed-batches.svg',
      barChart({
        title: 'SmolLM2-135M, concurrency 32: output tokens/s',
        xLabel: 'workload',
        yLabel: 'output tokens/s',
        categories: names,
        series: [{ name: 'output tok/s', values: names.map((n) => med(n, (p) => p.overall.output_token_throughput)) }],
      }),
    ]);
    files.push([
      'serving-mixed-batches-latency.svg',
      barChart({
        title: 'SmolLM2-135M, concurrency 32: inter-token latency',
        xLabel: 'workload',
        yLabel: 'ms',
        categories: names,
        series: [
          { name: 'ITL p50', values: names.map((n) => med(n, (p) => p.overall.stats.inter_token_latency?.p50 ?? 0)) },
          { name: 'ITL p99', values: names.map((n) => med(n, (p) => p.overall.stats.inter_token_latency?.p99 ?? 0)) },
        ],
      }),
    ]);
  }
  const kindsJson = await readFile(join(dir, 'kinds.json'), 'utf8').catch(() => null);
  if (kindsJson) {
    const { results } = JSON.parse(kindsJson) as { results: Record<string, PointResult[]> };
    const names = Object.keys(results);
    files.push([
      'serving-kinds.svg',
      barChart({
        title: 'SmolLM2-135M, concurrency 32: adapter kinds, output tokens/s',
        xLabel: 'workload (rank 16 on all seven projections)',
        yLabel: 'output tokens/s',
        categories: names,
        series: [{ name: 'output tok/s', values: names.map((n) => summary(results[n]).tokPerS) }],
      }),
    ]);
  }
  const latencyJson = await readFile(join(dir, 'latency.json'), 'utf8').catch(() => null);
  if (latencyJson) {
    const { results } = JSON.parse(latencyJson) as { results: Record<string, PointResult[]> };
    const names = Object.keys(results);
    const rows = names.map((n) => summary(results[n]));
    files.push([
      'serving-latency-target.svg',
      barChart({
        title: 'SmolLM2-135M, 32 adapters at concurrency 32: latency by token budget and step-time target',
        xLabel: '--max-batch-tokens, --step-time-target-ms',
        yLabel: 'ms',
        categories: names,
        series: [
          { name: 'TTFT p50', values: rows.map((r) => r.ttftP50) },
          { name: 'ITL p50', values: rows.map((r) => r.itlP50) },
          { name: 'ITL p99', values: rows.map((r) => r.itlP99) },
        ],
      }),
    ]);
    files.push([
      'serving-latency-throughput.svg',
      barChart({
        title: 'SmolLM2-135M, 32 adapters at concurrency 32: output tokens/s by token budget and step-time target',
        xLabel: '--max-batch-tokens, --step-time-target-ms',
        yLabel: 'output tokens/s',
        categories: names,
        series: [{ name: 'output tok/s', values: rows.map((r) => r.tokPerS) }],
      }),
    ]);
  }
  for (const [name, svg] of files) await writeFile(join(dir, name), svg);
  console.log(files.map(([name]) => join(dir, name)).join('\n'));
}

if (args.mode === 'sweep') await sweep();
else if (args.mode === 'kinds') await kinds();
else if (args.mode === 'latency') await latency();
else if (args.mode === 'charts') await charts();
else await ratios();
if (args.mode !== 'charts') await charts();
