/**
 * `npm run bench:qgemm-amx-ab`: the Q4_K GEMM with its AMX-INT8 batches allowed and not (setQgemmAmx), in turn in
 * one process on the same inputs, and the bf16 GEMM on AMX (`--bf16-dot`) beside them at the same shapes, round by
 * round; medians of the rates and of the per-round ratios. Where M is below kQAmxMinRows both Q4_K sides run VNNI.
 * Both Q4_K sides must give the same bits. Used to place kQAmxMinRows (native/include/loraplex/qgemm.h).
 *
 *   npm run bench:qgemm-amx-ab -- [--shapes 2048x2048,...] (N×K) [--m 8,16,24,32,128] [--rounds 7] [--out docs/figures/NAME]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeGemmKernels as kernels, setBf16Dot } from '../src/kernels/native/gemm.ts';
import { setQgemmAmx } from '../src/kernels/native/qgemm.ts';
import { randomWeight } from './qgemm.ts';
import { median, randomF32 } from './util.ts';

const { values: args } = parseArgs({
  options: {
    // Llama-3.2-1B's q|k|v (unfused q), gate|up part, down; Llama-3.1-8B's q|k|v
    shapes: { type: 'string', default: '2048x2048,8192x2048,2048x8192,6144x4096' },
    m: { type: 'string', default: '8,16,24,32,128' },
    rounds: { type: 'string', default: '7' },
    out: { type: 'string', default: 'artifacts/qgemm-amx-ab' },
  },
});
const shapes = args.shapes!.split(',').map((s) => s.split('x').map(Number) as [number, number]);
const ms = args.m!.split(',').map(Number);
const rounds = Number(args.rounds);
if (!setBf16Dot(true) || !setQgemmAmx(true))
  throw new Error('needs AMX (AMX-BF16 and AMX-INT8) and the avx512bf16 ISA');

interface Row {
  n: number;
  k: number;
  m: number;
  amx: number;
  vnni: number;
  bf16Amx: number;
  /** Medians over rounds of amx ÷ vnni and amx ÷ bf16-amx rates. */
  amxOverVnni: number;
  amxOverBf16: number;
}
const rows: Row[] = [];
for (const [n, k] of shapes) {
  const q4 = kernels.packWeight(randomWeight('q4_k', n, k));
  const values = randomF32(n * k, 5, 1 / Math.sqrt(k));
  const bf16 = kernels.packWeight({ dtype: 'bf16', rows: n, cols: k, data: Uint16Array.from(values, f32ToBf16) });
  for (const m of ms) {
    const x = randomF32(m * k, 3);
    const ys = { amx: new Float32Array(m * n), vnni: new Float32Array(m * n), bf16: new Float32Array(m * n) };
    const reps = Math.max(1, Math.round(4e9 / (2 * m * n * k)));
    const rate = (run: () => void) => {
      run();
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) run();
      return (2 * m * n * k * reps) / ((performance.now() - t0) * 1e6);
    };
    const got = { amx: [] as number[], vnni: [] as number[], bf16: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      const order: Array<'amx' | 'vnni'> = r % 2 === 0 ? ['amx', 'vnni'] : ['vnni', 'amx'];
      for (const side of order) {
        setQgemmAmx(side === 'amx');
        got[side].push(rate(() => kernels.gemm(x, q4, ys[side], m)));
      }
      got.bf16.push(rate(() => kernels.gemm(x, bf16, ys.bf16, m)));
    }
    setQgemmAmx(true);
    const [a, b] = [ys.amx, ys.vnni].map((y) => new Uint32Array(y.buffer));
    if (a.some((v, i) => v !== b[i])) throw new Error(`${n}×${k} M=${m}: AMX and VNNI gave different bits`);
    const row: Row = {
      n,
      k,
      m,
      amx: median(got.amx),
      vnni: median(got.vnni),
      bf16Amx: median(got.bf16),
      amxOverVnni: median(got.amx.map((v, i) => v / got.vnni[i])),
      amxOverBf16: median(got.amx.map((v, i) => v / got.bf16[i])),
    };
    rows.push(row);
    console.error(
      `${n}×${k} M=${m}: AMX ÷ VNNI ×${row.amxOverVnni.toFixed(2)}, ÷ bf16 AMX ×${row.amxOverBf16.toFixed(2)}`,
    );
  }
}
const info = cpuInfo();
const md = [
  `Q4_K GEMM with AMX-INT8 batches allowed (amx) and not (vnni), and the bf16 GEMM on AMX (\`--bf16-dot\`) at the same ` +
    `shapes, in turn in one process, ${rounds} rounds, medians; ${info.threads} threads (${info.active}); the two Q4_K ` +
    'sides gave the same bits (`npm run bench:qgemm-amx-ab`).',
  '',
  '| N × K | M | Q4_K amx (GFLOP/s) | Q4_K vnni | bf16 amx | amx ÷ vnni | amx ÷ bf16 amx |',
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.n} × ${r.k} | ${r.m} | ${r.amx.toFixed(0)} | ${r.vnni.toFixed(0)} | ${r.bf16Amx.toFixed(0)} | ×${r.amxOverVnni.toFixed(2)} | ×${r.amxOverBf16.toFixed(2)} |`,
  ),
];
writeFileSync(`${args.out}.md`, `${md.join('\n')}\n`);
writeFileSync(
  `${args.out}.json`,
  `${JSON.stringify({ generated: new Date().toISOString(), threads: info.threads, isa: info.active, rounds, rows }, null, 1)}\n`,
);
console.log(md.join('\n'));
