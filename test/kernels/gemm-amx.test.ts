/**
 * The AMX-BF16 GEMM (native/src/cpu/gemm_amx.cpp): bf16 weights with the bf16 dot mode on, where the CPU has
 * AMX. Shapes around its tiles (16 rows, 32 k, two 16-column B tiles per 32-column panel, 16-tile row blocks;
 * C in the tiles over all of k, or 8-step k chunks where a block's A tiles pass 1 MiB), against the reference fed x rounded to bf16: |amx − reference| ≤ 1e-6 · (K + 1),
 * inputs in [-1, 1] (the tolerance of the vdpbf16ps variant in gemm.test.ts). Batch invariance is bitwise:
 * AMX's sum order inside one instruction is not vdpbf16ps's, so every M, decode included, runs through AMX.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { f32ToBf16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';
import { nativeKernels } from '../../src/kernels/native.ts';
import type { WeightMatrix } from '../../src/kernels/types.ts';
import {
  assertBitwise,
  bf16DotPaths,
  maxAbsDiff,
  referenceKernels,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';

const skip = bf16DotPaths.includes('amx') ? false : 'this CPU (or its kernel) gives no AMX-BF16';

function bf16Weight(rows: number, cols: number, seed: number): WeightMatrix {
  return { dtype: 'bf16', rows, cols, data: Uint16Array.from(rng(seed).f32(rows * cols), f32ToBf16) };
}

function roundToBf16(x: Float32Array): Float32Array {
  const bits = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) bits[i] = f32ToBf16(x[i]) << 16;
  return new Float32Array(bits.buffer);
}

function activate() {
  setIsa('avx512bf16');
  assert.ok(setBf16Dot(true, { amx: true }));
  assert.equal(bf16DotPath(), 'amx');
}

describe('gemm on AMX vs the reference (x rounded to bf16)', { skip }, () => {
  before(activate);
  after(restoreDefaults);
  // K: below one step, one step exactly, a partial last step (odd K: the packing's pad pair too), several
  // chunks with a tail. N: one column, partial panels, more panels than one block holds.
  const KS = [1, 31, 32, 64, 301, 577];
  const NS = [1, 33, 67, 600];
  const MS = [1, 15, 16, 17, 33, 100];
  MS.forEach((m, mi) => {
    test(`M=${m}, K in ${KS}, N in ${NS}, with and without bias and accumulate`, () => {
      KS.forEach((k, ki) => {
        NS.forEach((n, ni) => {
          const seed = 100 * mi + 10 * ki + ni;
          const w = bf16Weight(n, k, seed);
          const r = rng(seed + 5000);
          const x = r.f32(m * k);
          const y0 = r.f32(m * n);
          const bias = r.f32(n);
          const [withBias, accumulate] = [seed % 2 === 0, seed % 3 !== 0];
          const run = (kernels: typeof nativeKernels, xs: Float32Array) => {
            const y = y0.slice();
            kernels.gemm(xs, kernels.packWeight(w), y, m, withBias ? bias : undefined, accumulate);
            return y;
          };
          const err = maxAbsDiff(run(nativeKernels, x), run(referenceKernels, roundToBf16(x)));
          const tol = 1e-6 * (k + 1);
          assert.ok(err <= tol, `M=${m} K=${k} N=${n}: max |diff| ${err} > ${tol}`);
        });
      });
    });
  });

  test('a block whose A tiles pass 1 MiB runs k in chunks (M=256, K=2081): same tolerance, with bias and accumulate', () => {
    const [m, k] = [256, 2081]; // 16 row tiles × 66 k steps × 1 KiB
    for (const [n, withBias, accumulate] of [
      [67, true, true],
      [33, false, false],
      [64, false, true],
    ] as const) {
      const w = bf16Weight(n, k, n);
      const r = rng(n + 1);
      const x = r.f32(m * k);
      const y0 = r.f32(m * n);
      const bias = withBias ? r.f32(n) : undefined;
      const run = (kernels: typeof nativeKernels, xs: Float32Array) => {
        const y = y0.slice();
        kernels.gemm(xs, kernels.packWeight(w), y, m, bias, accumulate);
        return y;
      };
      const err = maxAbsDiff(run(nativeKernels, x), run(referenceKernels, roundToBf16(x)));
      assert.ok(err <= 1e-6 * (k + 1), `N=${n}: max |diff| ${err}`);
    }
  });

  test('blocks of many panels at K ≤ 640 run row group by row group (M=100, K=577, N=600, one thread): same tolerance', () => {
    const [m, k, n] = [100, 577, 600]; // one block: 7 row tiles × 19 panels, a group's A is 38 KiB
    const w = bf16Weight(n, k, 7);
    const r = rng(8);
    const x = r.f32(m * k);
    const y0 = r.f32(m * n);
    const bias = r.f32(n);
    for (const [withBias, accumulate] of [
      [true, true],
      [false, false],
      [false, true],
    ] as const) {
      const run = (kernels: typeof nativeKernels, xs: Float32Array) => {
        const y = y0.slice();
        kernels.gemm(xs, kernels.packWeight(w), y, m, withBias ? bias : undefined, accumulate);
        return y;
      };
      const got = withThreads(1, () => run(nativeKernels, x));
      const err = maxAbsDiff(got, run(referenceKernels, roundToBf16(x)));
      assert.ok(err <= 1e-6 * (k + 1), `bias ${withBias}, accumulate ${accumulate}: max |diff| ${err}`);
    }
  });

  test('K = 0 writes bias (or keeps y) and nothing else', () => {
    const w = nativeKernels.packWeight({ dtype: 'bf16', rows: 5, cols: 0, data: new Uint16Array(0) });
    const y = rng(1).f32(10);
    const bias = rng(2).f32(5);
    const want = y.map((v, i) => v + bias[i % 5]);
    nativeKernels.gemm(new Float32Array(0), w, y, 2, bias, true);
    assertBitwise(y, want, 'accumulate + bias');
  });

  test("a panel's zero-padded last k step never reads the next panel (Inf there stays out)", () => {
    // K = 34: 17 pairs, the second 32-k step holds one; columns 32..63 (the next panel) hold Inf.
    const [n, k, m] = [64, 34, 3];
    const values = rng(3).f32(n * k);
    values.fill(Number.POSITIVE_INFINITY, 32 * k);
    const w: WeightMatrix = { dtype: 'bf16', rows: n, cols: k, data: Uint16Array.from(values, f32ToBf16) };
    const x = rng(4).f32(m * k);
    const y = new Float32Array(m * n);
    nativeKernels.gemm(x, nativeKernels.packWeight(w), y, m);
    const want = new Float32Array(m * n);
    referenceKernels.gemm(roundToBf16(x), referenceKernels.packWeight(w), want, m);
    for (let r = 0; r < m; r++) {
      const got = y.subarray(r * n, r * n + 32);
      assert.ok(got.every(Number.isFinite), `row ${r}: a finite panel turned non-finite`);
      assert.ok(maxAbsDiff(got, want.subarray(r * n, r * n + 32)) <= 1e-6 * (k + 1));
    }
  });
});

describe('gemm on AMX: batch invariance (bitwise)', { skip }, () => {
  before(activate);
  after(restoreDefaults);
  for (const [k, accumulate] of [
    [67, true],
    [577, true],
    [577, false],
    [2081, true], // M = 256 runs k in chunks (its A tiles pass 1 MiB), the rest whole k
  ] as const) {
    const what = accumulate ? 'accumulating into y' : 'into fresh y';
    test(`K=${k}, ${what}: a row alone (decode) equals that row in every M, at every position, at 1, 2 and 3 threads`, () => {
      const n = 600;
      const packed = nativeKernels.packWeight(bf16Weight(n, k, k));
      const r = rng(k + 1);
      const row = r.f32(k);
      const bias = r.f32(n);
      const yRow = r.f32(n);
      const alone = yRow.slice();
      nativeKernels.gemm(row, packed, alone, 1, bias, accumulate);
      for (const threads of [1, 2, 3]) {
        withThreads(threads, () => {
          for (const m of [1, 15, 16, 17, 33, 100, 200, 256, 300]) {
            for (const pos of new Set([0, 15 % m, m >> 1, m - 1])) {
              const x = r.f32(m * k, 3);
              x.set(row, pos * k);
              const y = r.f32(m * n);
              y.set(yRow, pos * n);
              nativeKernels.gemm(x, packed, y, m, bias, accumulate);
              assertBitwise(y.subarray(pos * n, (pos + 1) * n), alone, `${threads} threads, M=${m} row ${pos}`);
            }
          }
        });
      }
    });
  }
});
