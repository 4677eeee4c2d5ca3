/**
 * `npm run bench:qgemm-decode-bound`: what bounds batch-1 decode on quantized weights. For each weight type at
 * Llama-3.1-8B's projections, M = 1, in interleaved rounds (medians):
 *   cold  — the weight streamed from memory (caches evicted first), 2 threads: the decode figure;
 *   hot   — a weight of the same K small enough to stay in the two cores' L2 caches, 2 threads: the kernel's
 *           own rate with memory out of the way;
 *   read  — the read bandwidth (measureReadBandwidth) in the same round.
 * From those: the share of the bandwidth reached counting the file's bytes (ggml's blocks, what a token needs) and
 * the bytes the re-laid blocks hold (what the kernels stream), and two models of the cold time: overlapped
 * (max(memory, compute)) and serial (memory + compute), where memory = held bytes ÷ read bandwidth and compute =
 * file bytes ÷ the hot rate. Writes OUT.json and OUT.md.
 *
 *   npm run bench:qgemm-decode-bound -- [--rounds 7] [--types q4_k,q6_k,q8_0,bf16] [--out docs/figures/NAME]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuInfo, setThreads } from '../src/kernels/native/addon.ts';
import { nativeGemmKernels as kernels, measureReadBandwidth } from '../src/kernels/native/gemm.ts';
import { NativeQuantWeight } from '../src/kernels/native/qgemm.ts';
import type { MatrixDType, PackedWeight } from '../src/kernels/types.ts';
import { weightFormat } from '../src/kernels/weight-format.ts';
import { randomWeight } from './qgemm.ts';
import { median, randomF32 } from './util.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    types: { type: 'string', default: 'q4_k,q6_k,q8_0,bf16' },
    out: { type: 'string', default: 'artifacts/qgemm-decode-bound' },
  },
});
const rounds = Number(args.rounds);
const types = args.types!.split(',') as MatrixDType[];
const log = (line: string) => console.error(line);

const SHAPES = [
  { name: '8B gate|up', n: 28672, k: 4096 },
  { name: '8B down', n: 4096, k: 14336 },
  { name: '8B q|k|v', n: 6144, k: 4096 },
];
/** Held bytes of the hot weight: ~1.2 MB a core, inside each core's L2 (2 MB here) with room for x. */
const HOT_BYTES = 2.4e6;

/** Reads 768 MiB (over twice this VM's L3) a line at a time, so the next call's weights come from memory. */
const evictor = new Float32Array(192 << 20);
function evict(): number {
  let sum = 0;
  for (let i = 0; i < evictor.length; i += 16) sum += evictor[i];
  return sum;
}

function heldBytes(w: PackedWeight, dtype: MatrixDType, n: number, k: number): number {
  return w instanceof NativeQuantWeight ? w.heldBytes : weightFormat(dtype).bytes(n, k);
}

function seconds(run: () => void, calls: number): number {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) run();
  return (performance.now() - t0) / 1000 / calls;
}

interface Row {
  shape: string;
  n: number;
  k: number;
  dtype: MatrixDType;
  fileBytes: number;
  heldBytes: number;
  hotRows: number;
  coldSeconds: number;
  /** file bytes ÷ time, GB/s */
  coldGBs: number;
  hotGBs: number;
  readGBs: number;
  /** % of the read bandwidth: the file's bytes / the held bytes */
  ofReadFile: number;
  ofReadHeld: number;
  /** memory and compute times (held bytes ÷ read bandwidth; file bytes ÷ hot rate), and the two models */
  memorySeconds: number;
  computeSeconds: number;
  overlappedSeconds: number;
  serialSeconds: number;
  /** how much of the shorter of memory and compute the measured time hides: 1 = overlapped, 0 = serial */
  hidden: number;
}

setThreads(2);
const info = cpuInfo();
const rows: Row[] = [];
for (const shape of SHAPES) {
  const x = randomF32(shape.k, 3);
  const y = new Float32Array(shape.n);
  const cases = types.map((dtype) => {
    const cold = kernels.packWeight(randomWeight(dtype, shape.n, shape.k));
    const held = heldBytes(cold, dtype, shape.n, shape.k);
    const hotRows = Math.max(16, Math.floor((HOT_BYTES * shape.n) / held / 16) * 16);
    const hot = kernels.packWeight(randomWeight(dtype, hotRows, shape.k));
    return { dtype, cold, held, hotRows, hot, hotFile: weightFormat(dtype).bytes(hotRows, shape.k) };
  });
  const times = new Map(types.map((d) => [d, { cold: [] as number[], hot: [] as number[] }]));
  const read: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      evict();
      const t = times.get(c.dtype)!;
      t.cold.push(seconds(() => kernels.gemm(x, c.cold, y, 1), 1));
      kernels.gemm(x, c.hot, y, 1);
      t.hot.push(seconds(() => kernels.gemm(x, c.hot, y, 1), 50));
    }
    read.push(measureReadBandwidth(512 << 20, 3).value);
  }
  const readGBs = median(read);
  for (const c of cases) {
    const fileBytes = weightFormat(c.dtype).bytes(shape.n, shape.k);
    const t = times.get(c.dtype)!;
    const coldSeconds = median(t.cold);
    const hotGBs = c.hotFile / median(t.hot) / 1e9;
    const memorySeconds = c.held / (readGBs * 1e9);
    const computeSeconds = fileBytes / (hotGBs * 1e9);
    const overlappedSeconds = Math.max(memorySeconds, computeSeconds);
    const serialSeconds = memorySeconds + computeSeconds;
    rows.push({
      shape: shape.name,
      n: shape.n,
      k: shape.k,
      dtype: c.dtype,
      fileBytes,
      heldBytes: c.held,
      hotRows: c.hotRows,
      coldSeconds,
      coldGBs: fileBytes / coldSeconds / 1e9,
      hotGBs,
      readGBs,
      ofReadFile: (100 * fileBytes) / coldSeconds / 1e9 / readGBs,
      ofReadHeld: (100 * c.held) / coldSeconds / 1e9 / readGBs,
      memorySeconds,
      computeSeconds,
      overlappedSeconds,
      serialSeconds,
      hidden: (serialSeconds - coldSeconds) / Math.min(memorySeconds, computeSeconds),
    });
    log(`${shape.name} ${c.dtype}: cold ${(fileBytes / coldSeconds / 1e9).toFixed(1)} GB/s, hot ${hotGBs.toFixed(1)}`);
  }
}

const f = (v: number, d = 1) => v.toFixed(d);
const ms = (s: number) => (s * 1000).toFixed(2);
const md = [
  `Batch-1 GEMV (M = 1) at Llama-3.1-8B's projections, ${info.threads} threads (${info.active}), ${rounds} interleaved ` +
    'rounds, medians (`npm run bench:qgemm-decode-bound`). GB/s count the file\'s bytes (ggml\'s blocks); "held" is ' +
    'what the re-laid blocks stream. Hot: a weight of the same K inside the L2 caches. Memory = held bytes ÷ read ' +
    'bandwidth, compute = file bytes ÷ hot rate; "hidden": the share of the shorter of the two that the measured ' +
    'time overlaps (1: max(memory, compute), 0: their sum).',
  '',
  '| shape | type | held ÷ file | cold GB/s | % of read (file / held bytes) | hot GB/s | memory / compute ms | measured ms | overlapped / serial ms | hidden |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.shape} | ${r.dtype} | ${f(r.heldBytes / r.fileBytes, 3)} | ${f(r.coldGBs)} | ${f(r.ofReadFile, 0)} % / ` +
      `${f(r.ofReadHeld, 0)} % | ${f(r.hotGBs)} | ${ms(r.memorySeconds)} / ${ms(r.computeSeconds)} | ` +
      `${ms(r.coldSeconds)} | ${ms(r.overlappedSeconds)} / ${ms(r.serialSeconds)} | ${f(r.hidden, 2)} |`,
  ),
  '',
  `Read bandwidth per shape's rounds (median): ${[...new Set(rows.map((r) => `${r.shape} ${f(r.readGBs)} GB/s`))].join(', ')}.`,
];
writeFileSync(
  `${args.out}.json`,
  `${JSON.stringify({ generated: new Date().toISOString(), threads: info.threads, isa: info.active, rounds, rows }, null, 1)}\n`,
);
writeFileSync(`${args.out}.md`, `${md.join('\n')}\n`);
console.log(md.join('\n'));
