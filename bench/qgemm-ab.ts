/**
 * `npm run bench:qgemm-ab -- --base REV`: the quantized GEMM section of bench:kernels for two builds side by side —
 * REV (built in a temporary git worktree) and this checkout (rebuilt first) — in alternating runs, the order
 * swapped every round so drift spreads over both. Per shape and weight type, the medians over rounds of: M = 1
 * GB/s from memory (cold) and from cache (hot), and each batch's GFLOP/s over bf16's in the same run (the ratio that
 * drift leaves alone). Writes OUT.json (every run's rows) and OUT.md.
 *
 *   npm run bench:qgemm-ab -- --base be54008~1 [--rounds 6] [--repeats 5] [--out docs/figures/qgemm-ab]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { QgemmRow } from './qgemm.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    repeats: { type: 'string', default: '5' },
    out: { type: 'string', default: 'artifacts/qgemm-ab' },
  },
});
if (!args.base) throw new Error('--base REV is required (the build to compare this checkout with)');

const ROOT = join(import.meta.dirname, '..');
const git = (...a: string[]) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
const log = (line: string) => console.error(line);

const baseRev = git('rev-parse', '--short', args.base);
const headRev = git('rev-parse', '--short', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
const scratch = mkdtempSync(join(tmpdir(), 'loraplex-qgemm-ab-'));
const baseDir = join(scratch, 'base');

type Side = 'base' | 'head';
const runs: Record<Side, QgemmRow[][]> = { base: [], head: [] };

try {
  log(`worktree for ${baseRev} in ${baseDir}; building both`);
  git('worktree', 'add', '--detach', baseDir, baseRev);
  symlinkSync(join(ROOT, 'node_modules'), join(baseDir, 'node_modules'));
  const build = (cwd: string) =>
    execFileSync('npx', ['cmake-js', 'compile', '--release', '--out', 'build'], {
      cwd,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  build(baseDir);
  build(ROOT);
  const rounds = Number(args.rounds);
  for (let r = 0; r < rounds; r++) {
    const order: Side[] = r % 2 === 0 ? ['base', 'head'] : ['head', 'base'];
    for (const side of order) {
      const out = join(scratch, `${side}-${r}`);
      execFileSync(
        'npx',
        ['tsx', 'bench/kernels.ts', '--only', 'qgemm', '--repeats', args.repeats!, '--qgemm-out', out],
        { cwd: side === 'base' ? baseDir : ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      runs[side].push(JSON.parse(readFileSync(`${out}.json`, 'utf8')).rows as QgemmRow[]);
    }
    log(`round ${r + 1}/${rounds} done`);
  }
} finally {
  try {
    git('worktree', 'remove', '--force', baseDir);
  } catch {}
  rmSync(scratch, { recursive: true, force: true });
}

/** Median over rounds of one figure of one (shape, dtype) row. */
function med(side: Side, shape: string, dtype: string, pick: (row: QgemmRow) => number): number {
  return median(runs[side].map((rows) => pick(rows.find((x) => x.shape === shape && x.dtype === dtype)!)));
}

const f = (x: number, d = 1) => x.toFixed(d);
const batches = Object.keys(runs.head[0][0].prefillGflops).map(Number);
const lines = [
  `Quantized GEMM, ${baseRev} (base) against ${headRev}${dirty ? ' with uncommitted changes' : ''} (head): ` +
    `${args.rounds} rounds of \`bench:kernels --only qgemm --repeats ${args.repeats}\` each, alternating, the order ` +
    'swapped every round; medians over rounds. GB/s: M = 1, stored bytes; "×bf16": GFLOP/s over bf16 in the same run.',
  '',
  `| shape | weights | M=1 cold GB/s base · head | M=1 hot GB/s base · head | ${batches
    .map((m) => `M=${m} ×bf16 base · head`)
    .join(' | ')} |`,
  `|---|---|---|---|${batches.map(() => '---').join('|')}|`,
];
for (const row of runs.head[0]) {
  if (row.dtype === 'bf16') continue;
  const both = (pick: (r: QgemmRow) => number, d = 1) =>
    `${f(med('base', row.shape, row.dtype, pick), d)} · ${f(med('head', row.shape, row.dtype, pick), d)}`;
  lines.push(
    `| ${row.shape} | ${row.dtype} | ${both((r) => r.decodeColdGBs)} | ${both((r) => r.decodeHotGBs)} | ${batches
      .map((m) => both((r) => r.prefillVsBf16[m], 2))
      .join(' | ')} |`,
  );
}
const md = `${lines.join('\n')}\n`;
writeFileSync(`${args.out}.md`, md);
writeFileSync(
  `${args.out}.json`,
  `${JSON.stringify({ base: baseRev, head: headRev, dirty, rounds: Number(args.rounds), repeats: Number(args.repeats), runs }, null, 1)}\n`,
);
console.log(md);
