/**
 * Quantized GEMM section of the kernel benchmark: bf16 weights vs Q8_0 and Q4_K blocks at the same shapes,
 * timed side by side (the three interleaved within every repeat; medians).
 *   decode, M = 1: GB/s of the weight's stored bytes (ggml's: 34 B / 32 values, 144 B / 256), with the caches
 *     evicted first ("cold", from memory) and repeated ("hot"), against the measured read bandwidth;
 *   batches, M = 4, 16, 32 and 128: GFLOP/s (2·M·N·K per call), and the ratio to bf16's at the same M.
 * Q4_K only where K is a multiple of 256 (not SmolLM2's 576). Writes docs/figures/qgemm.{json,md} with --out.
 */
import { writeFileSync } from 'node:fs';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeGemmKernels as kernels } from '../src/kernels/native/gemm.ts';
import type { MatrixDType, PackedWeight, WeightMatrix } from '../src/kernels/types.ts';
import { fitsFormat, isBlockDType, weightFormat } from '../src/kernels/weight-format.ts';
import type { GemmShape } from './gemm.ts';
import type { MachinePeaks } from './machine.ts';
import { median, medianSeconds, printTable, randomF32 } from './util.ts';

export const QGEMM_SHAPES: GemmShape[] = [
  { name: 'smollm2 q/o', k: 576, n: 576 },
  { name: 'smollm2 gate/up', k: 576, n: 1536 },
  { name: 'smollm2 down', k: 1536, n: 576 },
  { name: 'llama1b gate/up', k: 2048, n: 8192 },
  { name: 'llama1b down', k: 8192, n: 2048 },
  { name: 'llama8b gate/up', k: 4096, n: 14336 },
];

const DTYPES: MatrixDType[] = ['bf16', 'q8_0', 'q4_k'];
const PREFILL_M = [4, 16, 32, 128];

export interface QgemmRow {
  shape: string;
  k: number;
  n: number;
  dtype: MatrixDType;
  weightBytes: number;
  decodeColdGBs: number;
  decodeHotGBs: number;
  /** % of the machine's read bandwidth, cold */
  decodeColdOfRead: number;
  /** bf16's cold M=1 time over this one's (how much faster decode is) */
  decodeSpeedupVsBf16: number;
  prefillGflops: Record<number, number>;
  /** this one's GFLOP/s over bf16's at the same M */
  prefillVsBf16: Record<number, number>;
}

/** Weights with a realistic spread: bf16 patterns of random f32; blocks of random bytes with small finite scales. */
export function randomWeight(dtype: MatrixDType, n: number, k: number): WeightMatrix {
  if (!isBlockDType(dtype)) return weightFormat('bf16').encode(randomF32(n * k, 7, 1 / Math.sqrt(k)), n, k);
  const format = weightFormat(dtype);
  const data = new Uint8Array(format.bytes(n, k));
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  for (let at = 0; at < data.length; at += format.blockBytes) {
    data[at] = 0x00; // d = dmin = 2^-9 (f16 0x1800): finite, small
    data[at + 1] = 0x18;
    if (dtype === 'q4_k') data.set([0x00, 0x18], at + 2);
  }
  return { dtype, rows: n, cols: k, data };
}

function cacheEvictor(bytes: number): () => void {
  const k = 8192;
  const n = Math.ceil(bytes / 2 / k);
  const w = kernels.packWeight({ dtype: 'bf16', rows: n, cols: k, data: new Uint16Array(n * k) });
  const x = new Float32Array(k);
  const y = new Float32Array(n);
  return () => kernels.gemm(x, w, y, 1);
}

export function runQgemmBench(
  machine: MachinePeaks,
  options: { shapes?: GemmShape[]; repeats?: number; out?: string } = {},
): QgemmRow[] {
  const shapes = options.shapes ?? QGEMM_SHAPES;
  const repeats = options.repeats ?? 5;
  const evict = cacheEvictor(768 << 20);
  const rows: QgemmRow[] = [];
  for (const shape of shapes) {
    const { k, n } = shape;
    const dtypes = DTYPES.filter((d) => fitsFormat(d, k));
    const packed = new Map<MatrixDType, PackedWeight>(
      dtypes.map((d) => [d, kernels.packWeight(randomWeight(d, n, k))]),
    );
    const maxM = Math.max(1, ...PREFILL_M);
    const x = randomF32(maxM * k, 3);
    const y = new Float32Array(maxM * n);
    const samples = new Map<string, number[]>();
    const add = (key: string, s: number) => samples.set(key, [...(samples.get(key) ?? []), s]);
    for (let r = 0; r < repeats; r++) {
      for (const d of dtypes) {
        const w = packed.get(d)!;
        add(
          `${d} cold`,
          medianSeconds(() => kernels.gemm(x, w, y, 1), { repeats: 3, before: evict }),
        );
        add(
          `${d} hot`,
          medianSeconds(() => kernels.gemm(x, w, y, 1), { repeats: 1 }),
        );
        for (const m of PREFILL_M)
          add(
            `${d} M=${m}`,
            medianSeconds(() => kernels.gemm(x, w, y, m), { repeats: 1 }),
          );
      }
    }
    const bf16Cold = median(samples.get('bf16 cold')!);
    const bf16At = (m: number) => median(samples.get(`bf16 M=${m}`)!);
    for (const d of dtypes) {
      const bytes = weightFormat(d).bytes(n, k);
      const cold = median(samples.get(`${d} cold`)!);
      const prefill: Record<number, number> = {};
      const vsBf16: Record<number, number> = {};
      for (const m of PREFILL_M) {
        const t = median(samples.get(`${d} M=${m}`)!);
        prefill[m] = (2 * m * n * k) / t / 1e9;
        vsBf16[m] = bf16At(m) / t;
      }
      rows.push({
        shape: shape.name,
        k,
        n,
        dtype: d,
        weightBytes: bytes,
        decodeColdGBs: bytes / cold / 1e9,
        decodeHotGBs: bytes / median(samples.get(`${d} hot`)!) / 1e9,
        decodeColdOfRead: (100 * bytes) / cold / 1e9 / machine.readGBs,
        decodeSpeedupVsBf16: bf16Cold / cold,
        prefillGflops: prefill,
        prefillVsBf16: vsBf16,
      });
    }
  }
  const table = tableOf(rows, machine);
  printTable(table.header, table.lines);
  if (options.out) {
    const meta = {
      isa: cpuInfo().active,
      threads: machine.threads,
      readGBs: machine.readGBs,
      f32Gflops: machine.f32Gflops,
    };
    writeFileSync(`${options.out}.json`, `${JSON.stringify({ machine: meta, repeats, rows }, null, 2)}\n`);
    const md = [
      `ISA ${meta.isa}, ${meta.threads} threads, read bandwidth ${machine.readGBs.toFixed(1)} GB/s, f32 FMA peak ${machine.f32Gflops.toFixed(0)} GFLOP/s; medians of ${repeats} interleaved repeats (bench/qgemm.ts).`,
      '',
      `| ${table.header.join(' | ')} |`,
      `| ${table.header.map(() => '---').join(' | ')} |`,
      ...table.lines.map((l) => `| ${l.join(' | ')} |`),
      '',
    ].join('\n');
    writeFileSync(`${options.out}.md`, md);
  }
  return rows;
}

function tableOf(rows: QgemmRow[], machine: MachinePeaks) {
  const header = ['shape', 'K', 'N', 'weights', 'MB', 'M=1 cold GB/s', '% read', 'M=1 hot GB/s', 'M=1 vs bf16'];
  for (const m of PREFILL_M) header.push(`M=${m} GFLOP/s (vs bf16)`);
  const lines = rows.map((r) => [
    r.shape,
    String(r.k),
    String(r.n),
    r.dtype,
    (r.weightBytes / 1e6).toFixed(1),
    r.decodeColdGBs.toFixed(1),
    `${r.decodeColdOfRead.toFixed(0)} %`,
    r.decodeHotGBs.toFixed(1),
    `${r.decodeSpeedupVsBf16.toFixed(2)}×`,
    ...PREFILL_M.map((m) => `${r.prefillGflops[m].toFixed(0)} (${r.prefillVsBf16[m].toFixed(2)}×)`),
  ]);
  void machine;
  return { header, lines };
}
