/**
 * LoRA cost relative to the base GEMM at the same shapes (SmolLM2-135M: K = 576, N = 576 or 1536, rank 16,
 * bf16 base weights), through applyAdapters over a row layout set once per step: prefill (M = 512 in 1 / 8 / 32
 * runs of rows, one adapter each) and decode (M = 1 / 8 / 32 / 64 rows, one shared adapter vs all distinct),
 * the decode rows again with the adapters stored as bf16 and f16 (half the adapter bytes). Then the fused
 * calls the forward pass makes (q|k|v: N = 576 + 192 + 192, gate|up: N = 1536 + 1536) against the base GEMM
 * of the fused projection; medians over repeats.
 *
 *   [LORAPLEX_THREADS=1] npx tsx bench/lora.ts [--fused-only] [--repeats 9]
 */

import './native-env.ts';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeGemmKernels } from '../src/kernels/native/gemm.ts';
import { nativeLoraKernels } from '../src/kernels/native/lora.ts';
import type {
  LoraBank,
  LoraDtype,
  LoraModuleOutput,
  LoraRows,
  PackedAdapter,
  PackedWeight,
} from '../src/kernels/types.ts';
import { medianSeconds } from './util.ts';

export interface LoraBenchOptions {
  k?: number;
  ns?: number[];
  rank?: number;
  repeats?: number;
  /** Minimum time per repeat; calls are looped until it is reached. */
  minRepeatMs?: number;
  /** Bank storages the decode rows are timed with (prefill rows use f32). Default: f32, bf16 and f16. */
  decodeDtypes?: LoraDtype[];
  /** Also time the fused module groups (runLoraFusedBench). Default: true. */
  fused?: boolean;
}

export interface LoraBenchRow {
  phase: 'prefill' | 'decode';
  dtype: LoraDtype;
  case: string;
  m: number;
  n: number;
  loraUs: number;
  gemmUs: number;
  fraction: number;
}

const MAX_ADAPTERS = 64;

function random(seed: number) {
  let a = seed >>> 0;
  return (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      return (a / 2 ** 32 - 0.5) * 2 * scale;
    });
}

/** A bank of MAX_ADAPTERS rank-r adapters over one module per N (module i has K → ns[i]). */
function adapterBank(k: number, ns: number[], rank: number, dtype: LoraDtype): LoraBank {
  const bank = nativeLoraKernels.createLoraBank(MAX_ADAPTERS, ns.length, dtype);
  for (let s = 0; s < MAX_ADAPTERS; s++) {
    const fill = random(1000 + s);
    const parts = ns.flatMap((n) => [fill(rank * k, 1 / Math.sqrt(k)), fill(rank * n, 0.05)]);
    const weights = new Float32Array(parts.reduce((total, p) => total + p.length, 0));
    const offsets: number[] = [];
    let at = 0;
    for (const p of parts) {
      offsets.push(at);
      weights.set(p, at);
      at += p.length;
    }
    const adapter: PackedAdapter = {
      weights,
      rank: Int32Array.from(ns, () => rank),
      offsetA: Int32Array.from(ns, (_, i) => offsets[2 * i]),
      offsetB: Int32Array.from(ns, (_, i) => offsets[2 * i + 1]),
      scale: Float32Array.from(ns, () => 2),
      inFeatures: Int32Array.from(ns, () => k),
      outFeatures: Int32Array.from(ns, (n) => n),
    };
    nativeLoraKernels.setLoraSlot(bank, s, adapter);
  }
  return bank;
}

function baseWeight(k: number, n: number): PackedWeight {
  const f32 = random(7)(n * k, 1 / Math.sqrt(k));
  const bits = new Uint16Array(f32.length);
  const view = new Uint32Array(f32.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = view[i] >>> 16; // truncation is fine for timing
  return nativeGemmKernels.packWeight({ dtype: 'bf16', rows: n, cols: k, data: bits });
}

/** A layout of `rowSlot` (set once, as a step does before its calls). */
function layoutOf(rowSlot: Int32Array): LoraRows {
  const rows = nativeLoraKernels.createLoraRows();
  nativeLoraKernels.setLoraRows(rows, rowSlot, rowSlot.length);
  return rows;
}

/** Rows 0..m-1 in `runs` contiguous runs, run s on slot s (a prefill of `runs` sequences). */
function runsOf(m: number, runs: number): Int32Array {
  return Int32Array.from({ length: m }, (_, t) => Math.floor((t * runs) / m));
}

export function runLoraBench(options: LoraBenchOptions = {}): LoraBenchRow[] {
  const { k = 576, ns = [576, 1536], rank = 16, repeats = 9, minRepeatMs = 20 } = options;
  const decodeDtypes = options.decodeDtypes ?? ['f32', 'bf16', 'f16'];
  const banks = new Map<LoraDtype, LoraBank>();
  for (const dtype of new Set<LoraDtype>(['f32', ...decodeDtypes])) banks.set(dtype, adapterBank(k, ns, rank, dtype));
  const rows: LoraBenchRow[] = [];
  const time = (fn: () => void) => medianSeconds(fn, { repeats, minSampleMs: minRepeatMs }) * 1e6;
  ns.forEach((n, module) => {
    const w = baseWeight(k, n);
    const x = random(3)(512 * k, 1);
    const y = new Float32Array(512 * n);
    const gemmUs = new Map<number, number>();
    const gemmAt = (m: number) => {
      if (!gemmUs.has(m))
        gemmUs.set(
          m,
          time(() => nativeGemmKernels.gemm(x, w, y, m)),
        );
      return gemmUs.get(m)!;
    };
    const out = { y, yStride: n, modules: [{ module, yOffset: 0, n }] };
    const apply = (bank: LoraBank, layout: LoraRows) => () => nativeLoraKernels.applyAdapters(bank, layout, x, k, out);
    const m = 512;
    for (const runs of [1, 8, 32]) {
      const loraUs = time(apply(banks.get('f32')!, layoutOf(runsOf(m, runs))));
      const row = { phase: 'prefill', dtype: 'f32', case: `${runs} adapter${runs > 1 ? 's' : ''}`, m, n } as const;
      rows.push({ ...row, loraUs, gemmUs: gemmAt(m), fraction: 0 });
    }
    for (const dtype of decodeDtypes) {
      for (const tokens of [1, 8, 32, 64]) {
        for (const distinct of [false, true]) {
          if (tokens === 1 && distinct) continue;
          const slots = Int32Array.from({ length: tokens }, (_, t) => (distinct ? t : 0));
          const loraUs = time(apply(banks.get(dtype)!, layoutOf(slots)));
          const label = `${distinct ? `${tokens} adapters` : '1 adapter'}${dtype === 'f32' ? '' : ` ${dtype}`}`;
          const row = { phase: 'decode', dtype, case: label, m: tokens, n } as const;
          rows.push({ ...row, loraUs, gemmUs: gemmAt(tokens), fraction: 0 });
        }
      }
    }
  });
  for (const r of rows) r.fraction = r.loraUs / r.gemmUs;
  printTable(rows, k, rank);
  if (options.fused ?? true) runLoraFusedBench({ repeats, minRepeatMs, rank });
  return rows;
}

function printTable(rows: LoraBenchRow[], k: number, rank: number) {
  const info = cpuInfo();
  console.log(`applyAdapters vs base GEMM (bf16), K=${k}, rank ${rank}, ISA ${info.active}, ${info.threads} threads`);
  const header = ['phase', 'M', 'N', 'case', 'LoRA µs', 'GEMM µs', 'LoRA/GEMM'];
  const lines = rows.map((r) => [
    r.phase,
    String(r.m),
    String(r.n),
    r.case,
    r.loraUs.toFixed(1),
    r.gemmUs.toFixed(1),
    `${(r.fraction * 100).toFixed(1)}%`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  for (const line of [header, ...lines]) console.log(line.map((c, i) => c.padStart(widths[i])).join('  '));
}

export interface LoraFusedBenchRow {
  phase: 'prefill' | 'decode';
  dtype: LoraDtype;
  modules: string;
  case: string;
  m: number;
  n: number; // the fused output's width
  applyUs: number; // applyAdapters over a layout set once per step
  gemmUs: number; // the base GEMM of the fused projection
}

// SmolLM2-135M's layer: x [M, 576] feeds q|k|v and gate|up; module indices into the bench's bank.
const FUSED_NS = [576, 192, 192, 1536, 1536];
const FUSED_GROUPS: { name: string; modules: LoraModuleOutput[] }[] = [
  {
    name: 'q|k|v',
    modules: [
      { module: 0, yOffset: 0, n: 576 },
      { module: 1, yOffset: 576, n: 192 },
      { module: 2, yOffset: 768, n: 192 },
    ],
  },
  {
    name: 'gate|up',
    modules: [
      { module: 3, yOffset: 0, n: 1536 },
      { module: 4, yOffset: 1536, n: 1536 },
    ],
  },
];

/**
 * The forward pass's fused calls (q|k|v, gate|up) through applyAdapters over a layout set once: prefill
 * M = 512 (1 adapter; 32 adapters in runs) and decode M = 32 (1 adapter; 32 distinct); f32 and bf16 banks,
 * with the base GEMM of the fused projection for scale.
 */
export function runLoraFusedBench(
  options: { k?: number; rank?: number; repeats?: number; minRepeatMs?: number; dtypes?: LoraDtype[] } = {},
): LoraFusedBenchRow[] {
  const { k = 576, rank = 16, repeats = 9, minRepeatMs = 20, dtypes = ['f32', 'bf16'] } = options;
  const time = (fn: () => void) => medianSeconds(fn, { repeats, minSampleMs: minRepeatMs }) * 1e6;
  const rows: LoraFusedBenchRow[] = [];
  const x = random(3)(512 * k, 1);
  for (const dtype of dtypes) {
    const bank = adapterBank(k, FUSED_NS, rank, dtype);
    for (const group of FUSED_GROUPS) {
      const n = group.modules.reduce((total, o) => total + o.n, 0);
      const y = new Float32Array(512 * n);
      const out = { y, yStride: n, modules: group.modules };
      const w = baseWeight(k, n);
      const gemm = {
        32: time(() => nativeGemmKernels.gemm(x, w, y, 32)),
        512: time(() => nativeGemmKernels.gemm(x, w, y, 512)),
      };
      const calls: { phase: 'prefill' | 'decode'; case: string; rowSlot: Int32Array }[] = [];
      for (const runs of [1, 32])
        calls.push({
          phase: 'prefill',
          case: runs === 1 ? '1 adapter' : `${runs} adapters`,
          rowSlot: runsOf(512, runs),
        });
      for (const distinct of [false, true])
        calls.push({
          phase: 'decode',
          case: distinct ? '32 adapters' : '1 adapter',
          rowSlot: Int32Array.from({ length: 32 }, (_, t) => (distinct ? t : 0)),
        });
      for (const call of calls) {
        const layout = layoutOf(call.rowSlot);
        const m = call.rowSlot.length;
        const applyUs = time(() => nativeLoraKernels.applyAdapters(bank, layout, x, k, out));
        rows.push({
          phase: call.phase,
          dtype,
          modules: group.name,
          case: call.case,
          m,
          n,
          applyUs,
          gemmUs: gemm[m as 32 | 512],
        });
      }
    }
  }
  printFusedTable(rows, k, rank);
  return rows;
}

function printFusedTable(rows: LoraFusedBenchRow[], k: number, rank: number) {
  const info = cpuInfo();
  console.log(
    `\napplyAdapters on the fused module groups vs their base GEMM (bf16), K=${k}, rank ${rank}, ISA ${info.active}, ${info.threads} threads`,
  );
  const header = ['phase', 'bank', 'modules', 'M', 'N', 'case', 'apply µs', 'GEMM µs', 'LoRA/GEMM'];
  const lines = rows.map((r) => [
    r.phase,
    r.dtype,
    r.modules,
    String(r.m),
    String(r.n),
    r.case,
    r.applyUs.toFixed(1),
    r.gemmUs.toFixed(1),
    `${((100 * r.applyUs) / r.gemmUs).toFixed(1)}%`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  for (const line of [header, ...lines]) console.log(line.map((c, i) => c.padStart(widths[i])).join('  '));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: { 'fused-only': { type: 'boolean', default: false }, repeats: { type: 'string', default: '9' } },
  });
  const repeats = Number(values.repeats);
  if (values['fused-only']) runLoraFusedBench({ repeats });
  else runLoraBench({ repeats });
}
