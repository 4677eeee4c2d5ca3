/**
 * applyAdapters with the shrink on AMX tiles (native/src/cpu/lora_amx.cpp): bf16 banks while the bf16 dot mode
 * runs on AMX. Against a reference of its semantics (lora_amx.h): h = Σ bf16(x)·A, the rank factors, then the
 * row kernels' f32 expand y = fma(Σ h·Bt, c_n, y) and DoRA's out_scale; the hardware's sums differ from exact
 * ones by rounding only (|Δ| ≤ 1e-5 of the terms' magnitude). Shapes around the tiles: K and ranks below, at and
 * past 16 / 32, odd N, 1..40 rows, every module option; batch invariance bitwise (a row alone, in any batch,
 * any thread count, the few-rows column tasks too); other bank dtypes keep the row kernels.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bf16ToF32, f32ToBf16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import { assertBitwise, bf16DotPaths, type Rng, restoreDefaults, rng, withThreads } from './implementations.ts';
import { applied, bankOf, close, eachRowAlone, makeAdapter } from './lora-fixtures.ts';

const skip = bf16DotPaths.includes('amx') ? false : 'this CPU (or its kernel) gives no AMX-BF16';
const native = nativeLoraKernels;

const bf16 = (v: number) => bf16ToF32(f32ToBf16(v));

/** Adds DoRA out scales, VeRA rank and column scales to some targeted modules of `a`. */
function withScales(r: Rng, a: PackedAdapter): PackedAdapter {
  const modules = a.rank.length;
  const out: number[] = [];
  const rank: number[] = [];
  const column: number[] = [];
  const offsetOutScale = new Int32Array(modules).fill(-1);
  const offsetRankScale = new Int32Array(modules).fill(-1);
  const offsetColumnScale = new Int32Array(modules).fill(-1);
  for (let m = 0; m < modules; m++) {
    if (a.rank[m] === 0) continue;
    if (r.next() < 0.5) {
      offsetOutScale[m] = out.length;
      for (let n = 0; n < a.outFeatures[m]; n++) out.push(0.5 + r.next());
    }
    if (r.next() < 0.5) {
      offsetRankScale[m] = rank.length;
      for (let j = 0; j < a.rank[m]; j++) rank.push(0.5 + r.next());
      offsetColumnScale[m] = column.length;
      for (let n = 0; n < a.outFeatures[m]; n++) column.push(0.5 + r.next());
    }
  }
  return {
    ...a,
    outScale: Float32Array.from(out),
    offsetOutScale,
    rankScale: Float32Array.from(rank),
    offsetRankScale,
    columnScale: Float32Array.from(column),
    offsetColumnScale,
  };
}

/** y after the AMX semantics, and each element's tolerance. */
function reference(
  adapters: PackedAdapter[],
  rowSlot: Int32Array,
  x: Float32Array,
  k: number,
  y0: Float32Array,
  yStride: number,
  modules: LoraModuleOutput[],
): { y: Float32Array; tolerance: Float64Array } {
  const y = y0.slice();
  const tolerance = new Float64Array(y.length);
  rowSlot.forEach((slot, t) => {
    if (slot < 0) return;
    const a = adapters[slot];
    const xb = Array.from(x.subarray(t * k, (t + 1) * k), bf16);
    for (const { module: m, yOffset, n: N } of modules) {
      const rank = a.rank[m];
      if (rank === 0) continue;
      const A = a.weights.subarray(a.offsetA[m], a.offsetA[m] + rank * k);
      const Bt = a.weights.subarray(a.offsetB[m], a.offsetB[m] + rank * N);
      const hs: number[] = [];
      const hMagnitude: number[] = [];
      for (let j = 0; j < rank; j++) {
        let h = 0;
        let magnitude = 0;
        for (let i = 0; i < k; i++) {
          h += xb[i] * bf16(A[j * k + i]);
          magnitude += Math.abs(xb[i] * bf16(A[j * k + i]));
        }
        const rs = a.offsetRankScale?.[m] ?? -1;
        const factor = rs >= 0 ? a.rankScale![rs + j] : 1;
        hs.push(Math.fround(Math.fround(h) * factor));
        hMagnitude.push(magnitude * Math.abs(factor));
      }
      const cs = a.offsetColumnScale?.[m] ?? -1;
      const os = a.offsetOutScale?.[m] ?? -1;
      for (let c = 0; c < N; c++) {
        let acc = 0;
        let magnitude = 0;
        for (let j = 0; j < rank; j++) {
          const b = bf16(Bt[j * N + c]);
          acc += hs[j] * b;
          magnitude += hMagnitude[j] * Math.abs(b);
        }
        const factor = cs >= 0 ? Math.fround(a.scale[m] * a.columnScale![cs + c]) : a.scale[m];
        const at = t * yStride + yOffset + c;
        let v = Math.fround(Math.fround(acc) * factor + y[at]);
        const s = os >= 0 ? a.outScale![os + c] : 1;
        v = Math.fround(v * s);
        y[at] = v;
        tolerance[at] = 1e-5 * (magnitude * Math.abs(factor) + Math.abs(y0[at])) * s + 1e-6;
      }
    }
  });
  return { y, tolerance };
}

function assertWithin(actual: Float32Array, expected: { y: Float32Array; tolerance: Float64Array }, what: string) {
  assert.equal(actual.length, expected.y.length);
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected.y[i]);
    if (!(d <= expected.tolerance[i]))
      assert.fail(`${what}: element ${i}: ${actual[i]} vs ${expected.y[i]} (tolerance ${expected.tolerance[i]})`);
  }
}

function activate() {
  setIsa('avx512bf16');
  assert.ok(setBf16Dot(true, { amx: true }));
  assert.equal(bf16DotPath(), 'amx');
}

describe('applyAdapters, the shrink on AMX (bf16 banks, bf16 dot mode on AMX)', { skip }, () => {
  before(activate);
  after(restoreDefaults);

  // K: under one 32-k step, one step, a partial step, many steps. Ranks: 1, under / at / past 16 and 32, 128.
  for (const k of [5, 32, 67, 576]) {
    test(`K=${k}: odd widths, mixed ranks, every module option, 1..40 interleaved rows vs the reference`, () => {
      const r = rng(300 + k);
      const ns = [53, 21, 130, 16, 1];
      const rankSets = [
        [1, 128, 0, 16, 5],
        [16, 0, 7, 33, 1],
        [32, 3, 17, 0, 2],
        [8, 64, 16, 15, 0],
      ];
      const adapters = rankSets.map((ranks, i) => {
        const a = makeAdapter(r, k, ns, ranks);
        return i % 2 === 1 ? withScales(r, a) : a;
      });
      const bank = bankOf(native, adapters, ns.length, 'bf16');
      for (let trial = 0; trial < 8; trial++) {
        const rows = trial === 0 ? 1 : r.int(2, 40);
        const chosen = ns.map((_, m) => m).filter(() => trial === 0 || r.next() < 0.7);
        let column = 1;
        const modules = chosen.map((module) => {
          const placed = { module, yOffset: column, n: ns[module] };
          column += ns[module] + r.int(0, 2);
          return placed;
        });
        if (trial % 2 === 1) modules.reverse();
        const yStride = column;
        const x = r.f32(rows * k);
        const y0 = r.f32(rows * yStride);
        const rowSlot = Int32Array.from({ length: rows }, () => r.int(-1, adapters.length - 1));
        const what = `K=${k}, trial ${trial} (${rows} rows, modules ${chosen})`;
        const got = applied(native, bank, rowSlot, x, k, y0, yStride, modules);
        assertWithin(got, reference(adapters, rowSlot, x, k, y0, yStride, modules), what);
      }
    });
  }

  test('SmolLM2 q|k|v and gate|up: a row is bitwise the same alone, in any batch and any thread count', () => {
    const r = rng(400);
    const K = 576;
    const ns = [576, 192, 192, 1536, 1536];
    const calls: LoraModuleOutput[][] = [
      [
        { module: 0, yOffset: 0, n: 576 },
        { module: 1, yOffset: 576, n: 192 },
        { module: 2, yOffset: 768, n: 192 },
      ],
      [
        { module: 3, yOffset: 0, n: 1536 },
        { module: 4, yOffset: 1536, n: 1536 },
      ],
    ];
    const adapters = [
      makeAdapter(r, K, ns, [16, 16, 16, 16, 16]),
      makeAdapter(r, K, ns, [64, 1, 0, 128, 7]),
      withScales(r, makeAdapter(r, K, ns, [3, 33, 8, 0, 16])),
    ];
    const bank = bankOf(native, adapters, ns.length, 'bf16');
    for (const rows of [1, 2, 3, 37, 100]) {
      // Long runs of one slot (prefill segments) with a few interleaved rows.
      const rowSlot = Int32Array.from({ length: rows }, (_, t) => (r.next() < 0.2 ? r.int(-1, 2) : (t >> 5) % 3));
      const x = r.f32(rows * K);
      for (const modules of calls) {
        const yStride = modules.reduce((total, m) => total + m.n, 0);
        const y0 = r.f32(rows * yStride);
        const batch = withThreads(2, () => applied(native, bank, rowSlot, x, K, y0, yStride, modules));
        assertWithin(batch, reference(adapters, rowSlot, x, K, y0, yStride, modules), `${rows} rows`);
        const alone = eachRowAlone(native, bank, rowSlot, x, K, y0, yStride, modules);
        assertBitwise(batch, alone, `${rows} rows: in the batch (2 threads) vs each alone (1 thread)`);
      }
    }
  });

  test('f32 banks keep the exact row kernels under the AMX bf16 dot mode', () => {
    const r = rng(401);
    const k = 67;
    const ns = [53, 21];
    const adapters = [makeAdapter(r, k, ns, [16, 5]), makeAdapter(r, k, ns, [1, 33])];
    const modules = [
      { module: 0, yOffset: 0, n: 53 },
      { module: 1, yOffset: 53, n: 21 },
    ];
    const rowSlot = Int32Array.from({ length: 20 }, (_, t) => t % 2);
    const x = r.f32(20 * k);
    const y0 = r.f32(20 * 74);
    const got = applied(native, bankOf(native, adapters, 2, 'f32'), rowSlot, x, k, y0, 74, modules);
    const want = applied(
      referenceLoraKernels,
      bankOf(referenceLoraKernels, adapters, 2, 'f32'),
      rowSlot,
      x,
      k,
      y0,
      74,
      modules,
    );
    close(got, want, 'f32 bank');
  });
});
