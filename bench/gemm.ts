/**
 * GEMM section of the kernel benchmark: prefill (M = 128, 512) in GFLOP/s against the measured compute
 * peak, and decode (M = 1, 16) in GB/s of weight bytes against the measured read bandwidth, for each
 * weight dtype, at the shapes of SmolLM2-135M and a Llama-3-8B MLP projection.
 *
 * Decode is timed two ways: "hot" repeats the call (a small weight then sits in L2/L3, as it would for a
 * tiny model), "cold" first streams a large buffer through the caches, so the weight comes from memory.
 * Where AVX-512 BF16 is active, bf16 weights are also timed through the bf16 dot mode (off by default): the
 * vdpbf16ps tiles ("bf16 dot") and, where the CPU has AMX-BF16, TDPBF16PS ("bf16 amx").
 */
import { writeFileSync } from 'node:fs';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { type Bf16DotPath, bf16DotPath, nativeGemmKernels as kernels, setBf16Dot } from '../src/kernels/native/gemm.ts';
import type { PackedWeight, WeightDType, WeightMatrix } from '../src/kernels/types.ts';
import type { MachinePeaks } from './machine.ts';
import { medianSeconds, percent, printTable, randomF32 } from './util.ts';

export interface GemmShape {
  name: string;
  k: number;
  n: number;
}

export const SMOLLM2_SHAPES: GemmShape[] = [
  { name: 'smollm2 q/o', k: 576, n: 576 },
  { name: 'smollm2 k/v', k: 576, n: 192 },
  { name: 'smollm2 gate/up', k: 576, n: 1536 },
  { name: 'smollm2 down', k: 1536, n: 576 },
  { name: 'smollm2 lm_head', k: 576, n: 49152 },
];

export const LLAMA8B_SHAPES: GemmShape[] = [{ name: 'llama8b gate/up', k: 4096, n: 14336 }];

export interface GemmBenchOptions {
  shapes?: GemmShape[];
  dtypes?: WeightDType[];
  prefillM?: number[];
  decodeM?: number[];
  repeats?: number;
  /** Writes `${out}.json` and `${out}.md` (the table, with the machine's peaks) for docs/. */
  out?: string;
}

export interface GemmBenchRow {
  shape: GemmShape;
  dtype: WeightDType;
  /** bf16 weights through a dot path ('off': widened to f32, as every other dtype) */
  path: Bf16DotPath;
  /** by M */
  prefillGflops: Map<number, number>;
  decodeHotGBs: Map<number, number>;
  decodeColdGBs: Map<number, number>;
}

const BYTES: Record<WeightDType, number> = { f32: 4, f16: 2, bf16: 2 };

/** Random weights of a moderate range; 16-bit patterns are built directly (sign, exponent, mantissa). */
export function randomWeight(dtype: WeightDType, n: number, k: number): WeightMatrix {
  if (dtype === 'f32') return { dtype, rows: n, cols: k, data: randomF32(n * k, 7, 1 / Math.sqrt(k)) };
  const data = new Uint16Array(n * k);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const sign = (s >>> 31) << 15;
    data[i] =
      dtype === 'f16'
        ? sign | ((10 + ((s >>> 20) & 3)) << 10) | ((s >>> 8) & 0x3ff)
        : sign | ((117 + ((s >>> 20) & 3)) << 7) | ((s >>> 8) & 0x7f);
  }
  return { dtype, rows: n, cols: k, data };
}

/** Streams a weight larger than the last-level cache once, so the next call finds nothing cached. */
function cacheEvictor(bytes: number): () => void {
  const k = 8192;
  const n = Math.ceil(bytes / 2 / k);
  const w = kernels.packWeight({ dtype: 'bf16', rows: n, cols: k, data: new Uint16Array(n * k) });
  const x = new Float32Array(k);
  const y = new Float32Array(n);
  return () => kernels.gemm(x, w, y, 1);
}

function measure(
  w: PackedWeight,
  shape: GemmShape,
  dtype: WeightDType,
  path: Bf16DotPath,
  options: Required<Omit<GemmBenchOptions, 'out'>>,
  evict: () => void,
): GemmBenchRow {
  const { k, n } = shape;
  const maxM = Math.max(...options.prefillM, ...options.decodeM);
  const x = randomF32(maxM * k, 3);
  const y = new Float32Array(maxM * n);
  const row: GemmBenchRow = {
    shape,
    dtype,
    path,
    prefillGflops: new Map(),
    decodeHotGBs: new Map(),
    decodeColdGBs: new Map(),
  };
  const bytes = n * k * BYTES[dtype];
  for (const m of options.prefillM) {
    const s = medianSeconds(() => kernels.gemm(x, w, y, m), { repeats: options.repeats });
    row.prefillGflops.set(m, (2 * m * n * k) / s / 1e9);
  }
  for (const m of options.decodeM) {
    const hot = medianSeconds(() => kernels.gemm(x, w, y, m), { repeats: options.repeats });
    const cold = medianSeconds(() => kernels.gemm(x, w, y, m), { repeats: options.repeats, before: evict });
    row.decodeHotGBs.set(m, bytes / hot / 1e9);
    row.decodeColdGBs.set(m, bytes / cold / 1e9);
  }
  return row;
}

export function runGemmBench(machine: MachinePeaks, options: GemmBenchOptions = {}): GemmBenchRow[] {
  const opts: Required<Omit<GemmBenchOptions, 'out'>> = {
    shapes: options.shapes ?? [...SMOLLM2_SHAPES, ...LLAMA8B_SHAPES],
    dtypes: options.dtypes ?? ['f32', 'bf16', 'f16'],
    prefillM: options.prefillM ?? [128, 512],
    decodeM: options.decodeM ?? [1, 16],
    repeats: options.repeats ?? 5,
  };
  const dotDefault = bf16DotPath();
  const dotPaths: Bf16DotPath[] = ['off'];
  for (const amx of [false, true]) {
    setBf16Dot(true, { amx });
    if (!dotPaths.includes(bf16DotPath())) dotPaths.push(bf16DotPath());
  }
  const evict = cacheEvictor(768 << 20);
  const rows: GemmBenchRow[] = [];
  try {
    for (const shape of opts.shapes) {
      for (const dtype of opts.dtypes) {
        const w = kernels.packWeight(randomWeight(dtype, shape.n, shape.k));
        for (const path of dtype === 'bf16' ? dotPaths : ['off' as const]) {
          setBf16Dot(path !== 'off', { amx: path === 'amx' });
          rows.push(measure(w, shape, dtype, path, opts, evict));
        }
      }
    }
  } finally {
    setBf16Dot(dotDefault !== 'off', { amx: dotDefault !== 'vdpbf16ps' });
  }
  const table = gemmTable(rows, machine, opts);
  console.log(table.caption);
  printTable(table.header, table.lines);
  if (options.out) writeGemmArtifact(options.out, rows, machine, opts, table);
  return rows;
}

interface GemmTable {
  caption: string;
  header: string[];
  lines: string[][];
}

function writeGemmArtifact(
  out: string,
  rows: GemmBenchRow[],
  machine: MachinePeaks,
  opts: Required<Omit<GemmBenchOptions, 'out'>>,
  table: GemmTable,
) {
  const plain = rows.map((r) => ({
    shape: r.shape,
    dtype: r.dtype,
    path: r.path,
    prefillGflops: Object.fromEntries(r.prefillGflops),
    decodeHotGBs: Object.fromEntries(r.decodeHotGBs),
    decodeColdGBs: Object.fromEntries(r.decodeColdGBs),
  }));
  const meta = { isa: cpuInfo().active, generated: new Date().toISOString(), repeats: opts.repeats, machine };
  writeFileSync(`${out}.json`, `${JSON.stringify({ ...meta, rows: plain }, null, 2)}\n`);
  const md = [
    `${meta.generated.slice(0, 16).replace('T', ' ')} UTC, medians of ${opts.repeats} repeats (bench/gemm.ts). ${table.caption}`,
    '',
    `| ${table.header.join(' | ')} |`,
    `| ${table.header.map(() => '---').join(' | ')} |`,
    ...table.lines.map((l) => `| ${l.join(' | ')} |`),
    '',
  ].join('\n');
  writeFileSync(`${out}.md`, md);
}

function gemmTable(
  rows: GemmBenchRow[],
  machine: MachinePeaks,
  opts: Required<Omit<GemmBenchOptions, 'out'>>,
): GemmTable {
  const caption =
    `ISA ${cpuInfo().active}, ${machine.threads} threads; peaks measured in the same run: f32 FMA ` +
    `${machine.f32Gflops.toFixed(0)} GFLOP/s, vdpbf16ps ${machine.bf16Gflops.toFixed(0)}, TDPBF16PS ` +
    `${(machine.amxBf16Gflops ?? 0).toFixed(0)}, read ${machine.readGBs.toFixed(1)} GB/s. Prefill: GFLOP/s and % of ` +
    'the f32 FMA peak (bf16 dot: of the vdpbf16ps peak; bf16 amx: of the TDPBF16PS peak), and × the f32 FMA peak. ' +
    `Decode: GB/s of weight bytes, hot (repeated) and cold (caches evicted first), % of ${machine.readGBs.toFixed(1)} GB/s read.`;
  const header = ['shape', 'K', 'N', 'weights'];
  for (const m of opts.prefillM) header.push(`M=${m} GFLOP/s`, '%peak', '×f32');
  for (const m of opts.decodeM) header.push(`M=${m} hot GB/s`, `M=${m} cold GB/s`, '%read');
  const lines = rows.map((r) => {
    const label = r.path === 'off' ? r.dtype : r.path === 'amx' ? 'bf16 amx' : 'bf16 dot';
    const cells = [r.shape.name, String(r.shape.k), String(r.shape.n), label];
    const peak = { off: machine.f32Gflops, vdpbf16ps: machine.bf16Gflops, amx: machine.amxBf16Gflops ?? 0 }[r.path];
    for (const m of opts.prefillM) {
      const g = r.prefillGflops.get(m)!;
      cells.push(g.toFixed(0), percent(g, peak), (g / machine.f32Gflops).toFixed(2));
    }
    for (const m of opts.decodeM) {
      const cold = r.decodeColdGBs.get(m)!;
      cells.push(r.decodeHotGBs.get(m)!.toFixed(1), cold.toFixed(1), percent(cold, machine.readGBs));
    }
    return cells;
  });
  return { caption, header, lines };
}
