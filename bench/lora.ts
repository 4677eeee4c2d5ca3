/**
 * LoRA kernel cost relative to the base GEMM at the same shapes (SmolLM2-135M: K = 576, N = 576 or 1536,
 * rank 16, bf16 base weights): SGMV at prefill (M = 512 in 1 / 8 / 32 segments, one adapter each) and BGMV
 * at decode (M = 1 / 8 / 32 / 64 tokens, one shared adapter vs all distinct), the BGMV rows again with
 * the adapters stored as bf16 (rows labelled bf16: half the adapter bytes). Then the fused calls the
 * forward pass makes (q|k|v: N = 576 + 192 + 192, gate|up: N = 1536 + 1536, one loraSgmvMulti /
 * loraBgmvMulti) against the same modules called one by one, at decode (M = 32) and prefill (M = 512),
 * timed alternately so drift hits both. Medians over repeats.
 *
 *   npx tsx bench/lora.ts [--fused-only] [--repeats 9]
 */

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeGemmKernels } from '../src/kernels/native/gemm.ts';
import { nativeLoraKernels } from '../src/kernels/native/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, PackedAdapter, PackedWeight } from '../src/kernels/types.ts';
import { median, medianSeconds } from './util.ts';

export interface LoraBenchOptions {
  k?: number;
  ns?: number[];
  rank?: number;
  repeats?: number;
  /** Minimum time per repeat; calls are looped until it is reached. */
  minRepeatMs?: number;
  /** Bank storages the BGMV rows are timed with (SGMV rows use f32). Default: f32 and bf16. */
  bgmvDtypes?: LoraDtype[];
  /** Also time the fused multi-module calls against one call per module (runLoraFusedBench). Default: true. */
  fused?: boolean;
}

export interface LoraBenchRow {
  kernel: 'sgmv' | 'bgmv';
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

export function runLoraBench(options: LoraBenchOptions = {}): LoraBenchRow[] {
  const { k = 576, ns = [576, 1536], rank = 16, repeats = 9, minRepeatMs = 20 } = options;
  const bgmvDtypes = options.bgmvDtypes ?? ['f32', 'bf16'];
  const banks = new Map<LoraDtype, LoraBank>();
  for (const dtype of new Set<LoraDtype>(['f32', ...bgmvDtypes])) banks.set(dtype, adapterBank(k, ns, rank, dtype));
  const bank = banks.get('f32')!;
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
    const out = { y, yStride: n, yOffset: 0 };
    const m = 512;
    for (const segments of [1, 8, 32]) {
      const segStart = Int32Array.from({ length: segments + 1 }, (_, s) => Math.round((s * m) / segments));
      const segSlot = Int32Array.from({ length: segments }, (_, s) => s);
      const loraUs = time(() => nativeLoraKernels.loraSgmv(bank, module, x, k, out, n, segStart, segSlot, segments));
      const row = { kernel: 'sgmv', dtype: 'f32', case: `${segments} segments`, m, n } as const;
      rows.push({ ...row, loraUs, gemmUs: gemmAt(m), fraction: 0 });
    }
    for (const dtype of bgmvDtypes) {
      const dtypeBank = banks.get(dtype)!;
      for (const tokens of [1, 8, 32, 64]) {
        for (const distinct of [false, true]) {
          if (tokens === 1 && distinct) continue;
          const slots = Int32Array.from({ length: tokens }, (_, t) => (distinct ? t : 0));
          const loraUs = time(() => nativeLoraKernels.loraBgmv(dtypeBank, module, x, k, out, n, slots, tokens));
          const label = `${distinct ? `${tokens} adapters` : '1 adapter'}${dtype === 'f32' ? '' : ` ${dtype}`}`;
          const row = { kernel: 'bgmv', dtype, case: label, m: tokens, n } as const;
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
  console.log(`LoRA kernels vs base GEMM (bf16), K=${k}, rank ${rank}, ISA ${info.active}, ${info.threads} threads`);
  const header = ['kernel', 'M', 'N', 'case', 'LoRA µs', 'GEMM µs', 'LoRA/GEMM'];
  const lines = rows.map((r) => [
    r.kernel,
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
  kernel: 'sgmv' | 'bgmv';
  dtype: LoraDtype;
  modules: string;
  case: string;
  m: number;
  n: number; // the fused output's width
  separateUs: number; // one call per module
  fusedUs: number; // one multi-module call
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

/** Medians of a and b, sampled alternately (a, b, a, b, ...) so the machine's drift hits both alike. */
function pairedMedians(a: () => void, b: () => void, repeats: number, minSampleMs: number): [number, number] {
  const as: number[] = [];
  const bs: number[] = [];
  a();
  b();
  for (let r = 0; r < repeats; r++) {
    as.push(medianSeconds(a, { repeats: 1, warmup: 0, minSampleMs }));
    bs.push(medianSeconds(b, { repeats: 1, warmup: 0, minSampleMs }));
  }
  return [median(as) * 1e6, median(bs) * 1e6];
}

/**
 * The forward pass's fused LoRA calls (q|k|v, gate|up) vs the same modules one call each: SGMV at M = 512
 * (1 segment; 32 segments of distinct adapters) and BGMV at M = 32 (1 adapter; 32 distinct), f32 and bf16
 * banks, with the base GEMM of the fused projection for scale.
 */
export function runLoraFusedBench(
  options: { k?: number; rank?: number; repeats?: number; minRepeatMs?: number; dtypes?: LoraDtype[] } = {},
): LoraFusedBenchRow[] {
  const { k = 576, rank = 16, repeats = 9, minRepeatMs = 20, dtypes = ['f32', 'bf16'] } = options;
  const rows: LoraFusedBenchRow[] = [];
  const x = random(3)(512 * k, 1);
  for (const dtype of dtypes) {
    const bank = adapterBank(k, FUSED_NS, rank, dtype);
    for (const group of FUSED_GROUPS) {
      const n = group.modules.reduce((total, o) => total + o.n, 0);
      const y = new Float32Array(512 * n);
      const out = { y, yStride: n, modules: group.modules };
      const w = baseWeight(k, n);
      const gemmAt = (m: number) =>
        medianSeconds(() => nativeGemmKernels.gemm(x, w, y, m), { repeats, minSampleMs: minRepeatMs }) * 1e6;
      const gemm = { 32: gemmAt(32), 512: gemmAt(512) };
      const calls: { kernel: 'sgmv' | 'bgmv'; case: string; m: number; separate: () => void; fused: () => void }[] = [];
      for (const segments of [1, 32]) {
        const m = 512;
        const segStart = Int32Array.from({ length: segments + 1 }, (_, s) => Math.round((s * m) / segments));
        const segSlot = Int32Array.from({ length: segments }, (_, s) => s);
        calls.push({
          kernel: 'sgmv',
          case: segments === 1 ? '1 segment' : `${segments} segments`,
          m,
          separate: () => {
            for (const o of group.modules)
              nativeLoraKernels.loraSgmv(
                bank,
                o.module,
                x,
                k,
                { y, yStride: n, yOffset: o.yOffset },
                o.n,
                segStart,
                segSlot,
                segments,
              );
          },
          fused: () => nativeLoraKernels.loraSgmvMulti(bank, x, k, out, segStart, segSlot, segments),
        });
      }
      for (const distinct of [false, true]) {
        const m = 32;
        const slots = Int32Array.from({ length: m }, (_, t) => (distinct ? t : 0));
        calls.push({
          kernel: 'bgmv',
          case: distinct ? `${m} adapters` : '1 adapter',
          m,
          separate: () => {
            for (const o of group.modules)
              nativeLoraKernels.loraBgmv(bank, o.module, x, k, { y, yStride: n, yOffset: o.yOffset }, o.n, slots, m);
          },
          fused: () => nativeLoraKernels.loraBgmvMulti(bank, x, k, out, slots, m),
        });
      }
      for (const call of calls) {
        const [separateUs, fusedUs] = pairedMedians(call.separate, call.fused, repeats, minRepeatMs);
        rows.push({
          kernel: call.kernel,
          dtype,
          modules: group.name,
          case: call.case,
          m: call.m,
          n,
          separateUs,
          fusedUs,
          gemmUs: gemm[call.m as 32 | 512],
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
    `\nFused multi-module LoRA calls vs one call per module, K=${k}, rank ${rank}, ISA ${info.active}, ${info.threads} threads`,
  );
  const header = [
    'kernel',
    'bank',
    'modules',
    'M',
    'N',
    'case',
    'separate µs',
    'fused µs',
    'speedup',
    'GEMM µs',
    'LoRA/GEMM',
  ];
  const lines = rows.map((r) => [
    r.kernel,
    r.dtype,
    r.modules,
    String(r.m),
    String(r.n),
    r.case,
    r.separateUs.toFixed(1),
    r.fusedUs.toFixed(1),
    `${(r.separateUs / r.fusedUs).toFixed(2)}×`,
    r.gemmUs.toFixed(1),
    `${((100 * r.separateUs) / r.gemmUs).toFixed(1)}% → ${((100 * r.fusedUs) / r.gemmUs).toFixed(1)}%`,
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
