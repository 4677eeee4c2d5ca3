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
 * <name>-{engine,serving,kv}.svg.
 */
import './native-env.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { barChart } from '../src/bench/charts/bar-chart.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { measureMachine } from './machine.ts';
import { type Metrics, runEngineBench } from './revisions/engine-run.ts';
import { compareKvDtypes, type KvDtypeResult } from './revisions/kv-dtype.ts';
import { type Comparison, comparePairs } from './revisions/paired.ts';
import { comparisonTable, throughputChart } from './revisions/report.ts';
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
    benches: { type: 'string', default: 'engine,serving,kv' },
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
  },
});
if (!args.base) throw new Error('--base <commit> is required (e.g. --base 5c9bfdf)');

const ROOT = join(import.meta.dirname, '..');
const outDir = resolve(ROOT, args.out!);
const pairs = Number(args.pairs);
const benches = new Set(args.benches!.split(','));
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

interface Section {
  command: string;
  runs: { pair: number; order: string; base: Metrics; head: Metrics }[];
  comparisons: Comparison[];
}

const info = cpuInfo();
const report = {
  command: `npm run bench:revisions -- ${process.argv.slice(2).join(' ')}`,
  startedAt: new Date().toISOString(),
  base: { ...base, label: label(base) },
  head: { ...head, label: label(head) },
  machine: { cpu: { best: info.best, active: info.active, threads: info.threads }, peaks: measureMachine() },
  engine: null as Section | null,
  serving: null as Section | null,
  kv: null as KvDtypeResult | null,
  finishedAt: null as string | null,
};
console.error(`revisions: base ${report.base.label}, head ${report.head.label}`);

async function save() {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, `${args.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
}

/** Runs `bench` in both checkouts, alternating which goes first, and compares after every pair. */
async function paired(name: string, command: string, bench: (dir: string) => Promise<Metrics>): Promise<Section> {
  const section: Section = { command, runs: [], comparisons: [] };
  for (let pair = 0; pair < pairs; pair++) {
    const baseFirst = pair % 2 === 0;
    const first = await bench(baseFirst ? base.dir : head.dir);
    const second = await bench(baseFirst ? head.dir : base.dir);
    const run = baseFirst
      ? { pair, order: 'base, head', base: first, head: second }
      : { pair, order: 'head, base', base: second, head: first };
    section.runs.push(run);
    section.comparisons = comparePairs(section.runs.map((r) => ({ a: r.base, b: r.head })));
    console.error(`${name} pair ${pair + 1}/${pairs} (${run.order}) done`);
    await save();
  }
  return section;
}

if (benches.has('engine')) {
  const flags = words(args['engine-args']!);
  report.engine = await paired('engine', `npm run bench:engine -- ${flags.join(' ')}`, (dir) =>
    runEngineBench(dir, flags),
  );
  await save();
}
if (benches.has('serving')) {
  const flags = words(args['serving-args']!);
  report.serving = await paired('serving', `npm run bench:serving -- --mode ratios ${flags.join(' ')}`, (dir) =>
    runServingBench(dir, [...flags, '--port', String(nextPort())]),
  );
  await save();
}
if (benches.has('kv')) {
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
  await save();
}
report.finishedAt = new Date().toISOString();
await save();

const a = `base ${base.sha.slice(0, 7)}`;
const b = `head ${head.sha.slice(0, 7)}`;
const lines = [`Command: \`${report.command}\``, `Base: ${report.base.label}; head: ${report.head.label}`, ''];
const svgs: [string, string][] = [];
for (const key of ['engine', 'serving'] as const) {
  const section = report[key];
  if (!section) continue;
  lines.push(`### ${key}: \`${section.command}\`, ${section.runs.length} pairs`, '');
  lines.push(...comparisonTable(section.comparisons, a, b), '');
  svgs.push([`${args.name}-${key}.svg`, throughputChart(`bench:${key}: ${a} vs ${b}`, section.comparisons, a, b)]);
}
if (report.kv) {
  const { bytesPerToken, load, comparisons } = report.kv;
  lines.push(
    `### KV cache f32 vs bf16 (head; concurrency ${load.concurrency}, ${load.adapters} adapters round-robin, ${load.inputTokens} in / ${load.outputTokens} out, ` +
      `${load.requests} requests, ${comparisons[0]?.a.length ?? 0} pairs)`,
    '',
    `KV bytes per token: f32 ${bytesPerToken.f32}, bf16 ${bytesPerToken.bf16} ` +
      `(ratio ${(bytesPerToken.bf16 / bytesPerToken.f32).toFixed(3)})`,
    '',
    ...comparisonTable(comparisons, 'f32 KV', 'bf16 KV'),
    '',
  );
  const tput = comparisons.find((c) => c.metric === 'output tok/s');
  if (tput)
    svgs.push([
      `${args.name}-kv.svg`,
      barChart({
        title: `KV cache dtype at concurrency ${load.concurrency}: output tokens/s (median)`,
        xLabel: 'KV cache',
        yLabel: 'output tokens/s',
        categories: [`f32 (${bytesPerToken.f32} B/token)`, `bf16 (${bytesPerToken.bf16} B/token)`],
        series: [{ name: 'output tok/s', values: [tput.medianA, tput.medianB] }],
      }),
    ]);
}
await writeFile(join(outDir, `${args.name}.md`), `${lines.join('\n')}\n`);
for (const [file, svg] of svgs) await writeFile(join(outDir, file), svg);
console.log(lines.join('\n'));
