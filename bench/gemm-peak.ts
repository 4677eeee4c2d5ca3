/**
 * `npm run bench:gemm-peak`: the f32 path's GEMM (f32 weights, and bf16 weights widened to f32, the default) as a
 * share of the f32 FMA peak measured around it, round by round. bench:kernels measures the peak once and the GEMMs
 * minutes later; on a VM whose speed moves within minutes (and a core whose clock drops after AMX work) that ratio
 * moved from 39 to 95 %. Here each round measures the peak, runs every case, then measures the peak again, and
 * a case's share is its rate over the mean of the two peaks; the report gives its median over rounds and quartiles.
 * Nothing in a round runs on AMX, so no AMX work lowers the clock between a peak and its GEMMs. Each round also
 * measures the GEMM's own register tile on operands that stay in L1 (its ceiling: no packing, no memory), as a
 * share of the same peaks. With several thread counts (`--threads 1,2`) every round runs the whole sequence at each
 * in turn, the order swapped every round, so a share at one thread (against one thread's peak) and at two sit side by
 * side in the same minutes.
 *
 *   npm run bench:gemm-peak -- [--rounds 11] [--threads 1,2] [--out docs/figures/gemm-f32-peak]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuInfo, setThreads } from '../src/kernels/native/addon.ts';
import {
  bf16DotPath,
  nativeGemmKernels as kernels,
  measureF32TileInL1,
  measureFmaPeak,
  setBf16Dot,
} from '../src/kernels/native/gemm.ts';
import type { WeightDType } from '../src/kernels/types.ts';
import { type GemmShape, LLAMA8B_SHAPES, randomWeight, SMOLLM2_SHAPES } from './gemm.ts';
import { median, medianSeconds, randomF32 } from './util.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '11' },
    out: { type: 'string', default: 'artifacts/gemm-f32-peak' },
    /** Thread counts, comma-separated (default: the pool's own). */
    threads: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const poolThreads = cpuInfo().threads;
const threadCounts = args.threads ? args.threads.split(',').map(Number) : [poolThreads];
if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`--threads: ${args.threads}`);
const PEAK_SECONDS = 0.25;
const M = [128, 512];
const shapes: GemmShape[] = [
  ...SMOLLM2_SHAPES.filter((s) => s.name === 'smollm2 gate/up' || s.name === 'smollm2 down'),
  ...LLAMA8B_SHAPES,
];
const dtypes: WeightDType[] = ['f32', 'bf16'];

interface Case {
  name: string;
  flops: number;
  run: () => void;
  /** Per thread count (threadCounts' order), one value a round. */
  gflops: number[][];
  share: number[][];
}
const perThreads = () => threadCounts.map((): number[] => []);

const dotDefault = bf16DotPath();
setBf16Dot(false); // bf16 weights widened to f32: the default path
const cases: Case[] = [];
for (const shape of shapes)
  for (const dtype of dtypes) {
    const w = kernels.packWeight(randomWeight(dtype, shape.n, shape.k));
    for (const m of M) {
      const x = randomF32(m * shape.k, 3);
      const y = new Float32Array(m * shape.n);
      cases.push({
        name: `${shape.name} ${shape.n}×${shape.k}, ${dtype === 'f32' ? 'f32' : 'bf16 widened'}, M=${m}`,
        flops: 2 * m * shape.n * shape.k,
        run: () => kernels.gemm(x, w, y, m),
        gflops: perThreads(),
        share: perThreads(),
      });
    }
  }

const peaks = perThreads();
const tile: Case = {
  name: 'the tile alone, operands in L1 (its ceiling)',
  flops: 0,
  run: () => {},
  gflops: perThreads(),
  share: perThreads(),
};
try {
  for (let r = 0; r < rounds; r++) {
    const order = threadCounts.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const ti of order) {
      setThreads(threadCounts[ti]);
      const before = measureFmaPeak(PEAK_SECONDS).value;
      const rates = cases.map((c) => c.flops / medianSeconds(c.run, { repeats: 3 }) / 1e9);
      const tileRate = measureF32TileInL1(PEAK_SECONDS).value;
      const after = measureFmaPeak(PEAK_SECONDS).value;
      peaks[ti].push(before, after);
      const peak = (before + after) / 2;
      cases.forEach((c, i) => {
        c.gflops[ti].push(rates[i]);
        c.share[ti].push(rates[i] / peak);
      });
      tile.gflops[ti].push(tileRate);
      tile.share[ti].push(tileRate / peak);
      console.error(
        `round ${r + 1}/${rounds}, ${threadCounts[ti]} thread(s): peak ${before.toFixed(0)} → ${after.toFixed(0)} GFLOP/s`,
      );
    }
  }
} finally {
  setBf16Dot(dotDefault !== 'off', { amx: dotDefault !== 'vdpbf16ps' });
  setThreads(poolThreads);
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)];
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const generated = new Date().toISOString();
const info = cpuInfo();
const git = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
  cwd: import.meta.dirname,
  encoding: 'utf8',
}).trim();
const threadsLabel = (t: number) => `${t} thread${t === 1 ? '' : 's'}`;
const several = threadCounts.length > 1;
const lines = [
  `${generated.slice(0, 16).replace('T', ' ')} UTC at ${git}, ${info.active}, ${threadCounts.map(threadsLabel).join(' and ')}, ` +
    `${rounds} rounds (\`npm run bench:gemm-peak${several ? ` -- --threads ${threadCounts.join(',')}` : ''}\`): each round ` +
    `${several ? 'at each thread count in turn (the order swapped every round): ' : ''}the f32 FMA peak, every case ` +
    "(median of 3 calls), the GEMM's register tile alone on operands that stay in L1, the peak again; share: " +
    `the case's rate over the mean of its round's two peaks at the same thread count (median [quartiles]). Peak over ` +
    `the run: ${threadCounts
      .map(
        (t, ti) =>
          `${several ? `${threadsLabel(t)} ` : ''}median ${median(peaks[ti]).toFixed(0)} GFLOP/s, ` +
          `${Math.min(...peaks[ti]).toFixed(0)}–${Math.max(...peaks[ti]).toFixed(0)}`,
      )
      .join('; ')}.`,
  '',
  `| case | ${threadCounts.map((t) => `GFLOP/s (median)${several ? `, ${threadsLabel(t)}` : ''} | share of the FMA peak${several ? `, ${threadsLabel(t)}` : ''}`).join(' | ')} |`,
  `|---|${threadCounts.map(() => '---|---|').join('')}`,
  ...[...cases, tile].map(
    (c) =>
      `| ${c.name} | ${threadCounts
        .map(
          (_, ti) =>
            `${median(c.gflops[ti]).toFixed(0)} | ${pct(median(c.share[ti]))} [${pct(quantile(c.share[ti], 0.25))}–${pct(quantile(c.share[ti], 0.75))}]`,
        )
        .join(' | ')} |`,
  ),
  '',
];
console.log(lines.join('\n'));
const report = {
  generated,
  git,
  isa: info.active,
  threads: threadCounts,
  rounds,
  peakSeconds: PEAK_SECONDS,
  /** Per thread count (as `threads`), as every other per-round array below. */
  peaks,
  cases: cases.map(({ name, flops, gflops, share }) => ({
    name,
    flops,
    gflops,
    share,
    medianShare: share.map(median),
  })),
  tileInL1: { gflops: tile.gflops, share: tile.share, medianShare: tile.share.map(median) },
};
writeFileSync(`${args.out}.json`, `${JSON.stringify(report, null, 1)}\n`);
writeFileSync(`${args.out}.md`, lines.join('\n'));
console.error(`wrote ${args.out}.json and .md`);
