/**
 * `npm run bench:sizes`: loraplex at real sizes, on the Llama-3.2-1B- and Llama-3.1-8B-shaped bench models that
 * `npm run bench:models` writes (random weights, real configs and tokenizer; bf16 safetensors, Q8_0, Q4_K (every
 * matrix) and Q4_K_M GGUF). Per model file: batch-1 decode tok/s and the read bandwidth it reaches (weight bytes ×
 * tok/s ÷ the read bandwidth measured in the same run), prefill tok/s, llama.cpp's llama-bench on the same GGUF
 * when its build is READY, and served throughput / latency with 1 and 32 adapters at a small concurrency.
 * Writes docs/figures/sizes.json and sizes.svg and the section of docs/benchmarks.md between its markers.
 *
 *   npm run bench:sizes -- [--no-loraplex-8b] [--serve "1B bf16,1B Q4_K_M"] [--no-llamacpp] [--report-only]
 *
 * An 8B file is loaded only when what loraplex would hold (Q8_0 / Q4_K projections as blocks, the rest as bf16)
 * fits in 70 % of the memory available now; its probe runs fewer decode steps and a shorter prompt.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { readModelConfig } from '../src/model/model-dir.ts';
import { measureMachine } from './machine.ts';
import { ensureSyntheticStore } from './peft-store.ts';
import type { SizeEntry, SizesArtifact } from './sizes/artifact.ts';
import type { EngineProbe } from './sizes/engine-probe.ts';
import { ggufBytes } from './sizes/gguf-bytes.ts';
import { llamaBench, llamaBenchBinary } from './sizes/llama-bench.ts';
import { writeDocs } from './sizes/report.ts';
import { serveFigures } from './sizes/serving-probe.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    root: { type: 'string' },
    'no-loraplex-8b': { type: 'boolean', default: false },
    serve: { type: 'string', default: '1B bf16' },
    'no-llamacpp': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
    steps: { type: 'string', default: '32' },
    'prefill-tokens': { type: 'string', default: '128' },
    adapters: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '4' },
    requests: { type: 'string', default: '8' },
    'input-tokens': { type: 'string', default: '64' },
    'output-tokens': { type: 'string', default: '32' },
    repeats: { type: 'string', default: '2' },
    port: { type: 'string', default: '18700' },
    'llama-repetitions': { type: 'string', default: '1' },
  },
});

const ROOT = join(import.meta.dirname, '..');
const MODELS = args.root ?? join(cacheRoot(), 'bench-models');
const ARTIFACT = join(ROOT, 'docs', 'figures', 'sizes.json');
const RANK = 16;
const THREADS = 2;
const log = (line: string) => console.error(line);

interface Variant {
  label: string;
  size: '1B' | '8B';
  shapeOf: string;
  format: string;
  path: string;
  ggufPath: string | null;
}

function variants(): Variant[] {
  const sizes = [
    { size: '1B', name: 'llama3-1b', shapeOf: 'Llama-3.2-1B' },
    { size: '8B', name: 'llama3-8b', shapeOf: 'Llama-3.1-8B' },
  ] as const;
  return sizes.flatMap(({ size, name, shapeOf }) => {
    const gguf = (type: string) => join(MODELS, name, 'gguf', `${name}-${type}.gguf`);
    const bf16Gguf = gguf('BF16');
    return [
      {
        label: `${size} bf16`,
        size,
        shapeOf,
        format: 'bf16 safetensors',
        path: join(MODELS, name, 'model'),
        ggufPath: existsSync(bf16Gguf) ? bf16Gguf : null,
      },
      ...['Q8_0', 'Q4_K', 'Q4_K_M'].map((type) => ({
        label: `${size} ${type}`,
        size,
        shapeOf,
        format: `GGUF ${type}`,
        path: gguf(type),
        ggufPath: gguf(type),
      })),
    ].filter((v) => existsSync(v.path) && (size === '1B' || v.ggufPath !== null)); // an 8B bf16 only as GGUF
  });
}

/** MemAvailable from /proc/meminfo (bytes), or the free memory Node sees. */
function availableBytes(): number {
  try {
    const kb = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {}
  return freemem();
}

/** The engine probe in its own process: the model's memory goes back when it exits. */
function engineProbe(path: string, steps: number, prefillTokens: number): EngineProbe {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'sizes', 'engine-probe.ts'), '--model', path].concat([
      '--steps',
      String(steps),
      '--prefill-tokens',
      String(prefillTokens),
    ]),
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  const probe = JSON.parse(out.trim().split('\n').pop()!) as EngineProbe;
  if (new Set(probe.sampleTokens).size === 0) throw new Error(`${path}: the probe sampled no tokens`);
  return probe;
}

async function measureEntry(
  v: Variant,
  readGBs: () => number,
  llamaBin: string | null,
  settings: SizesArtifact['settings'],
): Promise<SizeEntry> {
  const gguf = v.ggufPath ? await ggufBytes(v.ggufPath) : null;
  const entry: SizeEntry = {
    label: v.label,
    shapeOf: v.shapeOf,
    format: v.format,
    path: v.path,
    ggufPath: v.ggufPath,
    gguf,
    loraplex: null,
    llamacpp: null,
    llamacppReadGBs: null,
    llamacppBandwidthFraction: null,
    serving: null,
  };
  if (v.size === '8B' && v.format.startsWith('bf16')) {
    entry.loraplexSkipped = 'not loaded (16 GB as bf16)';
  } else if (v.size === '8B' && args['no-loraplex-8b']) {
    entry.loraplexSkipped = 'not loaded (--no-loraplex-8b)';
  } else if (v.size === '8B' && (gguf?.loadEstimateBytes ?? Number.POSITIVE_INFINITY) > 0.7 * availableBytes()) {
    entry.loraplexSkipped = `not loaded (would hold ${((gguf?.loadEstimateBytes ?? 0) / 1e9).toFixed(1)} GB)`;
  } else {
    log(`${v.label}: loraplex engine probe (${v.path})`);
    const small = v.size === '1B';
    const p = engineProbe(v.path, small ? settings.decodeSteps : 16, small ? settings.prefillTokens : 32);
    const decodeTokPerS = 1 / p.decodeSecondsPerToken;
    const gbs = (p.weightBytesPerToken * decodeTokPerS) / 1e9;
    entry.loraplex = {
      ...p,
      decodeTokPerS,
      prefillTokPerS: p.prefillTokens / p.prefillSeconds,
      readGBs: gbs,
      bandwidthFraction: gbs / readGBs(),
      heldBandwidthFraction:
        p.heldBytesPerToken === undefined ? undefined : (p.heldBytesPerToken * decodeTokPerS) / 1e9 / readGBs(),
    };
    log(
      `  ${decodeTokPerS.toFixed(2)} tok/s decode (${gbs.toFixed(1)} GB/s), ${entry.loraplex.prefillTokPerS.toFixed(1)} tok/s prefill`,
    );
  }
  if (llamaBin && v.ggufPath) {
    const long = v.size === '1B';
    log(`${v.label}: llama-bench ${v.ggufPath}`);
    entry.llamacpp = llamaBench(llamaBin, v.ggufPath, {
      promptTokens: long ? 128 : 32,
      genTokens: long ? 128 : 16,
      threads: THREADS,
      repetitions: Number(args['llama-repetitions']),
    });
    entry.llamacppReadGBs = ((gguf?.bytesPerToken ?? 0) * entry.llamacpp.decodeTokPerS) / 1e9;
    entry.llamacppBandwidthFraction = entry.llamacppReadGBs / readGBs();
    log(`  ${entry.llamacpp.decodeTokPerS.toFixed(2)} tok/s tg, ${entry.llamacpp.prefillTokPerS.toFixed(1)} tok/s pp`);
  }
  return entry;
}

async function main() {
  const t0 = performance.now();
  if (args['report-only']) {
    const artifact = JSON.parse(await readFile(ARTIFACT, 'utf8')) as SizesArtifact;
    await writeDocs(artifact, join(ROOT, 'docs', 'benchmarks.md'), join(ROOT, 'docs', 'figures', 'sizes.svg'));
    return;
  }
  // most wanted first (8B Q4_K is issue 11's bandwidth target), so a run cut short keeps those
  const order = ['8B Q4_K', '1B Q4_K', '1B bf16', '1B Q8_0', '8B Q8_0', '1B Q4_K_M', '8B Q4_K_M'];
  const rank = (label: string) => (order.indexOf(label) + order.length + 1) % (order.length + 1);
  const found = variants().sort((a, b) => rank(a.label) - rank(b.label));
  if (found.length === 0) throw new Error(`no bench models under ${MODELS}: run \`npm run bench:models\` first`);
  const llamaBin = args['no-llamacpp'] ? null : llamaBenchBinary(join(cacheRoot(), 'llamacpp'));
  log(`machine: measuring peaks…`);
  const machine = [measureMachine()];
  const readGBs = () => median(machine.map((m) => m.readGBs));
  const serve = new Set(args.serve!.split(',').map((s) => s.trim()));
  const settings = {
    decodeSteps: Number(args.steps),
    prefillTokens: Number(args['prefill-tokens']),
    serving: {
      concurrency: Number(args.concurrency),
      requests: Number(args.requests),
      inputTokens: Number(args['input-tokens']),
      outputTokens: Number(args['output-tokens']),
      repeats: Number(args.repeats),
    },
    adapterRank: RANK,
  };
  const entries: SizeEntry[] = [];
  let port = Number(args.port);
  // the artifact is rewritten after every model file, so a run cut short still leaves what it measured
  const save = async (final: boolean) => {
    if (final) machine.push(measureMachine());
    // fractions over the median of the bandwidth measurements so far
    for (const e of entries) {
      if (e.loraplex) e.loraplex.bandwidthFraction = e.loraplex.readGBs / readGBs();
      if (e.loraplex?.heldBytesPerToken !== undefined)
        e.loraplex.heldBandwidthFraction = (e.loraplex.heldBytesPerToken * e.loraplex.decodeTokPerS) / 1e9 / readGBs();
      if (e.llamacppReadGBs !== null) e.llamacppBandwidthFraction = e.llamacppReadGBs / readGBs();
    }
    const artifact: SizesArtifact = {
      generatedAt: new Date().toISOString(),
      note:
        "Figures move with this VM's speed between runs; the ratios side by side in one run are what holds." +
        (final ? '' : ` Partial: ${entries.length} of ${found.length} model files measured.`),
      machine,
      readGBs: readGBs(),
      settings,
      entries,
      seconds: (performance.now() - t0) / 1000,
    };
    await writeFile(ARTIFACT, `${JSON.stringify(artifact, null, 2)}\n`);
    await writeDocs(artifact, join(ROOT, 'docs', 'benchmarks.md'), join(ROOT, 'docs', 'figures', 'sizes.svg'));
    log(`wrote ${ARTIFACT} (${entries.length} of ${found.length}) after ${artifact.seconds.toFixed(0)} s`);
  };
  for (const v of found) {
    entries.push(await measureEntry(v, readGBs, llamaBin, settings));
    await save(false);
  }
  // serving last: the slowest part, and the single-stream figures above matter most
  for (const [i, v] of found.entries()) {
    if (!serve.has(v.label)) continue;
    const modelDir = join(MODELS, v.size === '1B' ? 'llama3-1b' : 'llama3-8b', 'model');
    const config = await readModelConfig(modelDir);
    const store = await ensureSyntheticStore(join(modelDir, '..', 'adapters'), config, Number(args.adapters), RANK);
    log(`${v.label}: serving with 1 and ${args.adapters} adapters`);
    entries[i].serving = await serveFigures(
      { root: ROOT, port: port++, model: v.path, store, adapters: Number(args.adapters), ...settings.serving },
      log,
    );
    await save(false);
  }
  await save(true);
}

await main();
