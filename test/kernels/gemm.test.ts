/**
 * GEMM conformance: every native ISA against the reference on odd shapes and every weight dtype, batch
 * invariance (bitwise), and argument checks.
 *
 * Tolerance: |native − reference| ≤ 1e-6 · (K + 1), inputs in [-1, 1]. On AVX-512 BF16 CPUs the bf16
 * weights also run through vdpbf16ps (variant "-dot") and, where the CPU has AMX-BF16, through TDPBF16PS
 * (variant "-amx"; more in gemm-amx.test.ts); both round x to bf16, so they are compared with the reference
 * fed x rounded to bf16, under the same tolerance.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { bf16DotActive, bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';
import type { Kernels, PackedWeight, WeightDType, WeightMatrix } from '../../src/kernels/types.ts';
import {
  assertBitwise,
  bf16DotPaths,
  maxAbsDiff,
  nativeImplementations,
  referenceKernels,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';

const DTYPES: WeightDType[] = ['f32', 'f16', 'bf16'];

function randomWeight(dtype: WeightDType, rows: number, cols: number, seed: number): WeightMatrix {
  const values = rng(seed).f32(rows * cols);
  if (dtype === 'f32') return { dtype, rows, cols, data: values };
  const encode = dtype === 'f16' ? f32ToF16 : f32ToBf16;
  return { dtype, rows, cols, data: Uint16Array.from(values, encode) };
}

function roundToBf16(x: Float32Array): Float32Array {
  const bits = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) bits[i] = f32ToBf16(x[i]) << 16;
  return new Float32Array(bits.buffer);
}

/** One native way to run GEMM: an ISA, and on AVX-512 BF16 each of the bf16 paths (widened, vdpbf16ps, AMX). */
interface Variant {
  name: string;
  kernels: Kernels;
  activate(): void;
  /** bf16 weights go through bf16 dot products (vdpbf16ps or AMX), which round x to bf16 */
  dot: boolean;
}

function variants(): Variant[] {
  return nativeImplementations().flatMap((impl) => {
    const plain: Variant = {
      name: impl.name,
      kernels: impl.kernels,
      dot: false,
      activate: () => {
        impl.activate();
        setBf16Dot(false);
        assert.ok(!bf16DotActive());
      },
    };
    if (impl.name !== 'native-avx512bf16') return [plain];
    const dots = bf16DotPaths.map(
      (path): Variant => ({
        name: `${impl.name}-${path === 'amx' ? 'amx' : 'dot'}`,
        kernels: impl.kernels,
        dot: true,
        activate: () => {
          impl.activate();
          assert.ok(setBf16Dot(true, { amx: path === 'amx' }), 'bf16 dot path active');
          assert.equal(bf16DotPath(), path);
        },
      }),
    );
    return [plain, ...dots];
  });
}

/** Whether a variant multiplies by x rounded to bf16 (the bf16 dot paths, bf16 weights only). */
function roundsX(v: Variant, dtype: WeightDType): boolean {
  return v.dot && dtype === 'bf16';
}

interface Case {
  m: number;
  k: number;
  n: number;
  bias: boolean;
  accumulate: boolean;
}

// M in 1, 2, 3, 7, 33, 130; odd K and N (partial panels, odd bf16 pairs); several k chunks; K = 0.
const CASES: Case[] = [
  { m: 1, k: 1, n: 1, bias: false, accumulate: false },
  { m: 2, k: 5, n: 67, bias: true, accumulate: false },
  { m: 3, k: 67, n: 5, bias: false, accumulate: true },
  { m: 7, k: 129, n: 129, bias: true, accumulate: true },
  { m: 33, k: 576, n: 67, bias: true, accumulate: false },
  { m: 130, k: 67, n: 129, bias: false, accumulate: false },
  { m: 3, k: 576, n: 576, bias: true, accumulate: true },
  { m: 130, k: 5, n: 1, bias: true, accumulate: true },
  { m: 13, k: 301, n: 33, bias: false, accumulate: true },
  { m: 2, k: 0, n: 5, bias: true, accumulate: true },
];

function run(
  kernels: Kernels,
  w: WeightMatrix | PackedWeight,
  x: Float32Array,
  c: Case,
  y0: Float32Array,
  bias?: Float32Array,
) {
  const y = y0.slice();
  kernels.gemm(x, 'data' in w ? kernels.packWeight(w) : w, y, c.m, bias, c.accumulate);
  return y;
}

describe('gemm: native vs reference', () => {
  after(restoreDefaults);
  CASES.forEach((c, ci) => {
    for (const dtype of DTYPES) {
      const name = `M=${c.m} K=${c.k} N=${c.n} ${dtype}${c.bias ? ' +bias' : ''}${c.accumulate ? ' accumulate' : ''}`;
      test(name, () => {
        const r = rng(1000 + ci);
        const w = randomWeight(dtype, c.n, c.k, 2000 + ci);
        const x = r.f32(c.m * c.k);
        const y0 = r.f32(c.m * c.n);
        const bias = c.bias ? r.f32(c.n) : undefined;
        const tol = 1e-6 * (c.k + 1);
        const exact = run(referenceKernels, w, x, c, y0, bias);
        const roundedX = dtype === 'bf16' ? run(referenceKernels, w, roundToBf16(x), c, y0, bias) : exact;
        for (const impl of variants()) {
          impl.activate();
          const expected = roundsX(impl, dtype) ? roundedX : exact;
          const err = maxAbsDiff(run(impl.kernels, w, x, c, y0, bias), expected);
          assert.ok(err <= tol, `${impl.name}: max |diff| ${err} > ${tol}`);
        }
      });
    }
  });

  test('a weight packed under one ISA runs under every ISA and owns its memory', () => {
    restoreDefaults();
    const c: Case = { m: 5, k: 67, n: 40, bias: true, accumulate: false };
    for (const dtype of DTYPES) {
      const w = randomWeight(dtype, c.n, c.k, 7);
      const r = rng(8);
      const x = r.f32(c.m * c.k);
      const bias = r.f32(c.n);
      const y0 = new Float32Array(c.m * c.n);
      const want = run(referenceKernels, w, x, c, y0, bias);
      const wantBf16x = run(referenceKernels, w, roundToBf16(x), c, y0, bias);
      const packed = nativeImplementations()[0].kernels.packWeight(w);
      w.data.fill(0);
      for (const impl of variants()) {
        impl.activate();
        const expected = roundsX(impl, dtype) ? wantBf16x : want;
        assert.ok(maxAbsDiff(run(impl.kernels, packed, x, c, y0, bias), expected) <= 1e-4, `${impl.name} ${dtype}`);
      }
    }
    restoreDefaults();
  });
});

describe('gemm: batch invariance (bitwise, per ISA)', () => {
  after(restoreDefaults);
  for (const impl of variants()) {
    for (const dtype of DTYPES) {
      test(`${impl.name} ${dtype}: a row's result does not depend on M, its position, the other rows or threads`, () => {
        impl.activate();
        const k = 577;
        const n = 129;
        const packed = impl.kernels.packWeight(randomWeight(dtype, n, k, 11));
        const r = rng(12);
        const row = r.f32(k);
        const bias = r.f32(n);
        const yRow = r.f32(n);
        const alone = yRow.slice();
        impl.kernels.gemm(row, packed, alone, 1, bias, true);
        for (const m of [1, 3, 17, 64, 200]) {
          for (const pos of new Set([0, m >> 1, m - 1])) {
            const x = r.f32(m * k, 3);
            x.set(row, pos * k);
            const y = r.f32(m * n);
            y.set(yRow, pos * n);
            impl.kernels.gemm(x, packed, y, m, bias, true);
            assertBitwise(y.subarray(pos * n, (pos + 1) * n), alone, `M=${m} row ${pos}`);
          }
        }
        const m = 64;
        const x = r.f32(m * k);
        const many = new Float32Array(m * n);
        impl.kernels.gemm(x, packed, many, m, bias);
        const one = new Float32Array(m * n);
        withThreads(1, () => impl.kernels.gemm(x, packed, one, m, bias));
        assertBitwise(many, one, '1 thread vs the pool');
      });
    }
  }
});

describe('gemm: bad arguments throw TypeError', () => {
  const backends: [string, Kernels][] = [
    ['reference', referenceKernels],
    ['native', nativeImplementations()[0].kernels],
  ];
  for (const [name, kernels] of backends) {
    test(`${name}: packWeight`, () => {
      const bad: WeightMatrix[] = [
        { dtype: 'bf16', rows: 2, cols: 3, data: new Float32Array(6) },
        { dtype: 'f32', rows: 2, cols: 3, data: new Uint16Array(6) },
        { dtype: 'f16', rows: 2, cols: 3, data: new Uint16Array(5) },
        { dtype: 'f8' as WeightDType, rows: 2, cols: 3, data: new Uint16Array(6) },
        { dtype: 'f32', rows: -1, cols: 3, data: new Float32Array(6) },
        { dtype: 'f32', rows: 1.5, cols: 3, data: new Float32Array(6) },
      ];
      for (const w of bad)
        assert.throws(() => kernels.packWeight(w), TypeError, JSON.stringify({ ...w, data: w.data.length }));
    });

    test(`${name}: gemm`, () => {
      const w = kernels.packWeight(randomWeight('f32', 4, 3, 1)); // N = 4, K = 3
      const x = new Float32Array(6);
      const y = new Float32Array(8);
      const calls: [string, () => void][] = [
        ['x too short', () => kernels.gemm(new Float32Array(5), w, y, 2)],
        ['y too short', () => kernels.gemm(x, w, new Float32Array(7), 2)],
        ['bias too short', () => kernels.gemm(x, w, y, 2, new Float32Array(3))],
        ['x not f32', () => kernels.gemm(new Float64Array(6) as unknown as Float32Array, w, y, 2)],
        ['y not f32', () => kernels.gemm(x, w, [] as unknown as Float32Array, 2)],
        ['bias not f32', () => kernels.gemm(x, w, y, 2, new Uint32Array(4) as unknown as Float32Array)],
        ['m negative', () => kernels.gemm(x, w, y, -1)],
        ['m fractional', () => kernels.gemm(x, w, y, 1.5)],
        ['w from another backend', () => kernels.gemm(x, { dtype: 'f32', rows: 4, cols: 3 }, y, 2)],
      ];
      for (const [what, call] of calls) assert.throws(call, TypeError, what);
      kernels.gemm(new Float32Array(0), w, new Float32Array(0), 0); // M = 0: nothing to do
    });
  }

  test('native: x and y must not overlap', () => {
    const kernels = nativeImplementations()[0].kernels;
    const w = kernels.packWeight(randomWeight('f32', 3, 3, 1));
    const buf = new Float32Array(12);
    assert.throws(() => kernels.gemm(buf.subarray(0, 6), w, buf.subarray(4, 10), 2), TypeError);
  });
});
