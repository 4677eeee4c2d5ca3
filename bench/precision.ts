/**
 * `npm run bench:precision`: what --kv-cache-dtype, --lora-dtype and --bf16-dot cost on SmolLM2-135M-Instruct,
 * measured against the transformers + PEFT oracle (`bash oracle/run.sh smollm2`):
 *   - accuracy: per oracle case, max |Δ| of the last-prompt-position logits and whether the 64 greedy tokens
 *     are identical (else the first divergent step and the reference's top-2 margin there), for KV f32 vs
 *     bf16 and slots f32 vs bf16 vs f16 vs int8 on the f32 model; on model-bf16, which has no oracle of its own, the
 *     same against the engine's f32-slot, f32-KV, dot-off run of that model (and against the oracle, for
 *     scale), with --bf16-dot on each dot path this CPU has (AMX, and vdpbf16ps forced beside it);
 *   - memory: KV bytes per token, slot bytes per adapter;
 *   - cost: decode tokens/s with 32 sequences over 32 adapters, settings interleaved, as ratios to f32/f32;
 *     on model-bf16, prefill and decode tokens/s per dot path as ratios to the dot path off.
 * The dot path is set per setting (each run records the one it took); LORAPLEX_BF16_DOT decides none of the
 * accuracy or throughput runs. LORAPLEX_THREADS and LORAPLEX_ISA apply (native-env.ts).
 * Writes docs/figures/precision/precision.json, two SVG charts beside it, and docs/precision.md from them.
 *
 *   npm run bench:precision -- [--dir ~/.cache/loraplex/smollm2] [--quick] [--render-only] [--out docs]
 *
 * --quick: the f32 model only (no dot paths), shorter prompts, fewer rounds; written to artifacts/precision-quick/.
 * --render-only: the page and charts again from the stored artifact (PEFT's bf16-KV figures re-read).
 */
import './native-env.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/backends/index.ts';
import type { KvDtype } from '../src/backends/types.ts';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { buildEngine } from '../src/engine/build-engine.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { bf16DotPath } from '../src/kernels/native/gemm.ts';
import type { LoraDtype } from '../src/kernels/types.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import { type CaseRun, compareRuns, oracleRuns, runCases } from './precision/accuracy.ts';
import { precisionCharts } from './precision/charts.ts';
import { dotPaths, withDotPath } from './precision/dot-path.ts';
import { type DotThroughputWorkload, measureDotThroughput } from './precision/dot-throughput.ts';
import { readOracleSet } from './precision/oracle-set.ts';
import {
  type AccuracyRun,
  PEFT_BF16_KV,
  PRECISION_ARTIFACT,
  type PrecisionArtifact,
  precisionMarkdown,
} from './precision/report.ts';
import { measureThroughput, type ThroughputSetting } from './precision/throughput.ts';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    out: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'render-only': { type: 'boolean', default: false },
  },
});
const dir = args.dir ?? process.env.LORAPLEX_SMOLLM2_DIR ?? join(cacheRoot(), 'smollm2');
const quick = args.quick ?? false;
// A quick run never replaces the published figures unless asked to.
const out = args.out ?? (quick ? join('artifacts', 'precision-quick') : 'docs');
interface Setting {
  model: 'f32' | 'bf16';
  loraDtype: LoraDtype;
  kvCacheDtype: KvDtype;
  /** --bf16-dot's path for this run (model-bf16); absent: off. */
  dot?: 'amx' | 'vdpbf16ps';
}

/** The dot paths this CPU runs (AMX first); none measured in --quick, which leaves model-bf16 out. */
const DOT_PATHS = quick ? [] : dotPaths();

/** The first setting of each model is its reference (f32 slots, f32 KV, dot off); each other one changes one thing. */
const ACCURACY: Setting[] = [
  { model: 'f32', loraDtype: 'f32', kvCacheDtype: 'f32' },
  { model: 'f32', loraDtype: 'f32', kvCacheDtype: 'bf16' },
  { model: 'f32', loraDtype: 'bf16', kvCacheDtype: 'f32' },
  { model: 'f32', loraDtype: 'f16', kvCacheDtype: 'f32' },
  { model: 'f32', loraDtype: 'int8', kvCacheDtype: 'f32' },
  ...(quick
    ? []
    : ([
        { model: 'bf16', loraDtype: 'f32', kvCacheDtype: 'f32' },
        { model: 'bf16', loraDtype: 'bf16', kvCacheDtype: 'f32' },
        { model: 'bf16', loraDtype: 'f16', kvCacheDtype: 'f32' },
        { model: 'bf16', loraDtype: 'int8', kvCacheDtype: 'f32' },
        { model: 'bf16', loraDtype: 'f32', kvCacheDtype: 'bf16' },
        ...DOT_PATHS.map((dot) => ({ model: 'bf16', loraDtype: 'f32', kvCacheDtype: 'f32', dot })),
        // What a bf16 checkpoint serves with --bf16-dot by default (bf16 slots): on AMX the LoRA shrink too.
        ...DOT_PATHS.filter((dot) => dot === 'amx').map((dot) => ({
          model: 'bf16',
          loraDtype: 'bf16',
          kvCacheDtype: 'f32',
          dot,
        })),
      ] as Setting[])),
];

const THROUGHPUT: ThroughputSetting[] = [
  { loraDtype: 'f32', kvCacheDtype: 'f32' },
  { loraDtype: 'bf16', kvCacheDtype: 'f32' },
  { loraDtype: 'f16', kvCacheDtype: 'f32' },
  { loraDtype: 'int8', kvCacheDtype: 'f32' },
  { loraDtype: 'f32', kvCacheDtype: 'bf16' },
];

const WORKLOAD = quick
  ? { sequences: 32, adapters: 32, rank: 16, promptTokens: 32, rounds: 3, stepsPerRound: 4 }
  : { sequences: 32, adapters: 32, rank: 16, promptTokens: 128, rounds: 7, stepsPerRound: 6 };

/** One prefill step of 16 × 128 = 2048 rows (the engine's default step budget), then 8 decode steps. */
const DOT_WORKLOAD: DotThroughputWorkload = {
  sequences: 16,
  adapters: 16,
  rank: 16,
  promptTokens: 128,
  decodeSteps: 8,
  rounds: 5,
};

async function accuracy(): Promise<AccuracyRun[]> {
  const set = await readOracleSet(dir);
  const oracle = oracleRuns(set);
  const references = new Map<string, Map<string, CaseRun>>();
  const runs: AccuracyRun[] = [];
  for (const s of ACCURACY) {
    // Every setting sets its dot path (off unless it names one), whatever LORAPLEX_BF16_DOT said at load.
    const run = await withDotPath(s.dot ?? 'off', async (): Promise<AccuracyRun> => {
      const t0 = performance.now();
      const { engine } = await buildEngine({
        modelDir: join(dir, s.model === 'f32' ? 'model' : 'model-bf16'),
        adapters: set.adapterNames.map((name) => ({ name, dir: join(dir, 'adapters', name) })),
        kvCacheTokens: 8192,
        loraDtype: s.loraDtype,
        kvCacheDtype: s.kvCacheDtype,
      });
      // model-bf16 has no oracle: its first (f32-slot, f32-KV, dot-off) run is the reference.
      const isReference = !references.has(s.model);
      const result = runCases(engine, set);
      if (isReference) references.set(s.model, s.model === 'f32' ? oracle : result);
      const seconds = (performance.now() - t0) / 1000;
      await engine.adapters.close();
      return {
        model: s.model,
        loraDtype: s.loraDtype,
        kvCacheDtype: s.kvCacheDtype,
        ...(s.dot ? { bf16Dot: true, bf16DotPath: bf16DotPath() } : {}),
        reference: s.model === 'f32' ? 'oracle' : 'engine',
        kvBytesPerToken: engine.runner.kv.bytesPerToken,
        seconds,
        cases: compareRuns(result, references.get(s.model) as Map<string, CaseRun>),
        vsOracle: s.model === 'bf16' ? compareRuns(result, oracle) : null,
      };
    });
    const worst = Math.max(...run.cases.map((c) => c.maxAbsDiff));
    const same = run.cases.filter((c) => c.identical).length;
    const dot = run.bf16Dot ? `, bf16 dot ${run.bf16DotPath}` : '';
    const oracleNote = run.vsOracle
      ? `; vs oracle ${Math.max(...run.vsOracle.map((c) => c.maxAbsDiff)).toExponential(2)}, ` +
        `${run.vsOracle.filter((c) => c.identical).length}/${run.vsOracle.length} identical`
      : '';
    console.log(
      `model ${s.model}, lora ${s.loraDtype}, kv ${s.kvCacheDtype}${dot}: max |Δlogit| ${worst.toExponential(2)} vs ${run.reference}, ` +
        `${same}/${run.cases.length} greedy identical${oracleNote} (${run.seconds.toFixed(0)} s)`,
    );
    runs.push(run);
  }
  return runs;
}

/** PEFT's own bf16-KV error, when bench/precision/peft_bf16_kv.py has written it beside the artifact. */
function readPeftBf16Kv(figures: string): PrecisionArtifact['peftBf16Kv'] {
  const file = join(figures, PEFT_BF16_KV);
  if (!existsSync(file)) return null;
  const { generated, cases } = JSON.parse(readFileSync(file, 'utf8'));
  return { generated, cases };
}

function write(artifact: PrecisionArtifact, figures: string) {
  mkdirSync(figures, { recursive: true });
  writeFileSync(join(figures, PRECISION_ARTIFACT), `${JSON.stringify(artifact, null, 2)}\n`);
  for (const chart of precisionCharts(artifact)) writeFileSync(join(figures, chart.name), chart.svg);
  writeFileSync(join(out, 'precision.md'), precisionMarkdown(artifact));
  console.log(`wrote ${figures}/ and ${join(out, 'precision.md')}`);
}

async function main() {
  const figures = join(out, 'figures', 'precision');
  if (args['render-only']) {
    // The page again from the stored artifact (and PEFT's bf16-KV figures, if newer), without measuring.
    const stored = JSON.parse(readFileSync(join(figures, PRECISION_ARTIFACT), 'utf8')) as PrecisionArtifact;
    write({ ...stored, peftBf16Kv: readPeftBf16Kv(figures) ?? stored.peftBf16Kv ?? null }, figures);
    return;
  }
  const started = performance.now();
  const info = cpuInfo();
  console.log(`loraplex bench:precision — ${dir}${quick ? ' (quick)' : ''}; ${info.best}, ${info.threads} threads`);
  const accuracyRuns = await accuracy();
  console.log(`decode throughput: ${JSON.stringify(WORKLOAD)}`);
  const loaded = await loadModelDir(join(dir, 'model'));
  const throughput = measureThroughput(loaded, createBackend('native'), THROUGHPUT, WORKLOAD, console.log);
  let dotThroughput: PrecisionArtifact['dotThroughput'] = null;
  if (DOT_PATHS.length > 0) {
    console.log(`model-bf16 prefill / decode per bf16 dot path: ${JSON.stringify(DOT_WORKLOAD)}`);
    const bf16 = await loadModelDir(join(dir, 'model-bf16'));
    const paths = ['off' as const, ...DOT_PATHS];
    const results = measureDotThroughput(bf16, createBackend('native'), paths, DOT_WORKLOAD, console.log);
    dotThroughput = { workload: DOT_WORKLOAD, results };
  }
  const artifact: PrecisionArtifact = {
    generated: new Date().toISOString(),
    command: `npm run bench:precision${quick ? ' -- --quick' : ''}`,
    machine: { isa: info.best, threads: info.threads },
    model: 'SmolLM2-135M-Instruct (oracle/smollm2.py)',
    quick,
    accuracy: accuracyRuns,
    throughput: { workload: WORKLOAD, results: throughput },
    dotThroughput,
    seconds: (performance.now() - started) / 1000,
    peftBf16Kv: readPeftBf16Kv(figures),
  };
  write(artifact, figures);
}

await main();
