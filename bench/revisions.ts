/**
 * `npm run bench:revisions`: two revisions side by side — bench/engine.ts and bench/serving.ts run in each
 * checkout, alternating base and head for N pairs (B H, H B, …), per-metric medians and head/base ratios with
 * the spread of the per-pair ratios; then f32 against bf16 KV on the head's server at concurrency 32, with
 * the KV bytes per token. The base is a detached worktree under ~/.cache/loraplex/revisions/<sha>, built
 * once (its own native addon); the head is this working tree unless --head names a commit.
 *
 *   npm run bench:revisions -- --base 5c9bfdf [--head REV] [--pairs 3] [--kv-pairs 3] [--kv-requests 32]
 *       [--kv-tokens IN,OUT] [--benches engine,serving,kv] [--out artifacts/revisions] [--name revisions]
 *       [--engine-args "..."] [--serving-args "..."]
 *
 * The default per-run settings are small (a run is about a minute on a 2-core VM shared with other work); the
 * pairs, not the run length, are what make the ratio fair there.
 *
 * Writes <out>/<name>.json after every pair (a run cut short keeps what it measured), then <name>.md and
 * <name>-{engine,serving,kv}.svg; `--render <out>/<name>.json` redraws those from the JSON alone.
 */
import './native-env.ts';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { measureMachine } from './machine.ts';
import { type Metrics, runEngineBench } from './revisions/engine-run.ts';
import { compareKvDtypes } from './revisions/kv-dtype.ts';
import { comparePairs } from './revisions/paired.ts';
import { type RevisionsReport, renderReport, type Section } from './revisions/render.ts';
import { runServingBench } from './revisions/serving-run.ts';
import { type Checkout, ensureWorktree, workingTree } from './revisions/worktree.ts';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    head: { type: 'string' },
    pairs: { type: 'string', default: '3' },
    'kv-pairs': { type: 'string', default: '3' },
    'kv-requests': { type: 'string', default: '32' },
    'kv-tokens': { type: 'string', default: '64,32' },
    /** In this order; the cheap KV comparison first so a run cut short still has it. */
    benches: { type: 'string', default: 'kv,serving,engine' },
    out: { type: 'string', default: 'artifacts/revisions' },
    name: { type: 'string', default: 'revisions' },
    'engine-args': {
      type: 'string',
      default: '--quick --dtypes bf16 --prompts 16 --input-tokens 32 --output-tokens 16',
    },
    'serving-args': {
      type: 'string',
      default: '--concurrency 32 --adapters 32 --requests 32 --repeats 1 --input-tokens 32 --output-tokens 16',
    },
    port: { type: 'string', default: '18700' },
    /** Redraw <out>/<name>.{md,svg} from a saved JSON; measures nothing. */
    render: { type: 'string' },
  },
});

const ROOT = join(import.meta.dirname, '..');
const outDir = resolve(ROOT, args.out!);

async function writeOutputs(report: RevisionsReport) {
  const { markdown, svgs } = renderReport(report, args.name!);
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, `${args.name}.md`), markdown);
  for (const [file, svg] of svgs) await writeFile(join(outDir, file), svg);
  console.log(markdown);
}

if (args.render) {
  await writeOutputs(JSON.parse(await readFile(args.render, 'utf8')) as RevisionsReport);
  process.exit(0);
}
if (!args.base) throw new Error('--base <commit> is required (e.g. --base 5c9bfdf)');
const pairs = Number(args.pairs);
const benches = args.benches!.split(',');
const words = (s: string) => s.split(/\s+/).filter(Boolean);
let port = Number(args.port);
/** A fresh port block per server start (bench/serving.ts takes two consecutive ports from --port). */
const nextPort = () => {
  port += 10;
  return port;
};

const base = ensureWorktree(ROOT, args.base);
const head = args.head ? ensureWorktree(ROOT, args.head) : workingTree(ROOT);
const label = (c: Checkout) => `${c.label} (${c.sha.slice(0, 7)}${c.dirty ? ', uncommitted changes' : ''})`;

const info = cpuInfo();
const report: RevisionsReport = {
  command: `npm run bench:revisions -- ${process.argv.slice(2).join(' ')}`,
  startedAt: new Date().toISOString(),
  base: { ...base, label: label(base) },
  head: { ...head, label: label(head) },
  machine: { cpu: { best: info.best, active: info.active, threads: info.threads }, peaks: measureMachine() },
  engine: null,
  serving: null,
  kv: null,
  finishedAt: null,
};
console.error(`revisions: base ${report.base.label}, head ${report.head.label}`);

async function save() {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, `${args.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
}

/** Runs `bench` in both checkouts, alternating which goes first, and compares after every pair. */
async function paired(
  name: 'engine' | 'serving',
  command: string,
  bench: (dir: string) => Promise<Metrics>,
): Promise<Section> {
  const section: Section = { command, runs: [], comparisons: [] };
  report[name] = section;
  for (let pair = 0; pair < pairs; pair++) {
    const baseFirst = pair % 2 === 0;
    const loadBefore = [loadavg()[0]];
    const first = await bench(baseFirst ? base.dir : head.dir);
    loadBefore.push(loadavg()[0]);
    const second = await bench(baseFirst ? head.dir : base.dir);
    const run = baseFirst
      ? { pair, order: 'base, head', base: first, head: second, loadBefore }
      : { pair, order: 'head, base', base: second, head: first, loadBefore };
    section.runs.push(run);
    section.comparisons = comparePairs(section.runs.map((r) => ({ a: r.base, b: r.head })));
    console.error(`${name} pair ${pair + 1}/${pairs} (${run.order}) done`);
    await save();
  }
  return section;
}

const sections: Record<string, () => Promise<unknown>> = {
  engine: () => {
    const flags = words(args['engine-args']!);
    return paired('engine', `npm run bench:engine -- ${flags.join(' ')}`, (dir) => runEngineBench(dir, flags));
  },
  serving: () => {
    const flags = words(args['serving-args']!);
    return paired('serving', `npm run bench:serving -- --mode ratios ${flags.join(' ')}`, (dir) =>
      runServingBench(dir, [...flags, '--port', String(nextPort())]),
    );
  },
  kv: async () => {
    report.kv = await compareKvDtypes({
      dir: head.dir,
      pairs: Number(args['kv-pairs']),
      concurrency: 32,
      adapters: 32,
      requests: Number(args['kv-requests']),
      inputTokens: Number(args['kv-tokens']!.split(',')[0]),
      outputTokens: Number(args['kv-tokens']!.split(',')[1]),
      port: nextPort(),
    });
  },
};
for (const name of benches) {
  if (!sections[name]) throw new Error(`--benches: unknown '${name}' (engine, serving, kv)`);
  await sections[name]();
  await save();
}
report.finishedAt = new Date().toISOString();
await save();

await writeOutputs(report);
