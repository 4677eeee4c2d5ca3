/**
 * Quantized GEMM conformance (Q8_0 / Q4_K / Q6_K weights): every native ISA equals the reference bit for bit (the
 * same integer dots and f32 steps, qgemm.h's Semantics) on odd M and N, K a multiple of the block, M = 1,
 * bias and accumulate, on weights quantized from f32 and on random raw blocks (every bit pattern of the
 * values, scales and mins); batch invariance (bitwise); and the error against the exact f32 GEMM on the
 * dequantized weights, which is only x's quantization: per output
 *   |y − y_exact| ≤ Σ_k |W[n, k]| · e_b(k)  +  2e-6 · (Σ_k |x·W| + |bias| + |y0|)
 * x rounded to the nearest of 255 levels per block, e_b = dx_b / 2, then f32 rounding of the sums; Q8_0's dx
 * is rounded to f16 after x is (llama.cpp's order), which adds up to 127 · 2^-11 · dx_b per value.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToF16 } from '../../src/kernels/dtype.ts';
import { QGEMM_BLOCK, quantizeRow } from '../../src/kernels/reference/qgemm.ts';
import type { BlockDType, WeightMatrix } from '../../src/kernels/types.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import {
  assertBitwise,
  nativeImplementations,
  referenceKernels,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';
import { quantizedWeight, rawWeight, runGemm } from './qgemm-fixtures.ts';

const TYPES: BlockDType[] = ['q8_0', 'q4_k', 'q6_k'];
interface Case {
  m: number;
  blocks: number; // K = blocks · the type's block
  n: number;
  bias: boolean;
  accumulate: boolean;
}

const CASES: Case[] = [
  { m: 1, blocks: 1, n: 1, bias: false, accumulate: false },
  { m: 1, blocks: 3, n: 47, bias: true, accumulate: false },
  { m: 2, blocks: 2, n: 17, bias: false, accumulate: true },
  { m: 3, blocks: 5, n: 33, bias: true, accumulate: true },
  { m: 7, blocks: 2, n: 5, bias: true, accumulate: false },
  { m: 13, blocks: 3, n: 19, bias: false, accumulate: false },
  { m: 33, blocks: 1, n: 67, bias: true, accumulate: true },
];

describe('qgemm: native vs reference, bit for bit', () => {
  after(restoreDefaults);
  for (const type of TYPES) {
    CASES.forEach((c, ci) => {
      const k = c.blocks * QGEMM_BLOCK[type];
      test(`${type} M=${c.m} K=${k} N=${c.n}${c.bias ? ' +bias' : ''}${c.accumulate ? ' accumulate' : ''}`, () => {
        for (const [label, w] of [
          ['quantized', quantizedWeight(type, c.n, k, 100 + ci)],
          ['raw blocks', rawWeight(type, c.n, k, 200 + ci)],
        ] as const) {
          const r = rng(300 + ci);
          const x = r.f32(c.m * k, 2);
          const y0 = r.f32(c.m * c.n);
          const bias = c.bias ? r.f32(c.n) : undefined;
          const want = runGemm(referenceKernels, w, x, c.m, y0, bias, c.accumulate);
          for (const impl of nativeImplementations()) {
            impl.activate();
            assertBitwise(runGemm(impl.kernels, w, x, c.m, y0, bias, c.accumulate), want, `${impl.name} ${label}`);
          }
        }
      });
    });
  }

  test('x rows with zeros, ties and a zero block quantize alike everywhere', () => {
    for (const type of TYPES) {
      const k = 2 * QGEMM_BLOCK[type];
      const w = rawWeight(type, 9, k, 5);
      // Row 0: all zero; row 1: halves (ties when scaled by 127 / 127); row 2: one large value per block.
      const x = new Float32Array(3 * k);
      for (let i = 0; i < k; i++) x[k + i] = ((i % 5) - 2) * 0.5;
      for (let i = 0; i < k; i++) x[2 * k + i] = i % 32 === 0 ? 1000 : 0.001 * i;
      const want = runGemm(referenceKernels, w, x, 3, new Float32Array(27));
      for (const impl of nativeImplementations()) {
        impl.activate();
        assertBitwise(runGemm(impl.kernels, w, x, 3, new Float32Array(27)), want, `${impl.name} ${type}`);
      }
    }
    restoreDefaults();
  });
});

describe('qgemm: q6_k at the edges of its integer ranges', () => {
  after(restoreDefaults);
  // Every q at 63 (or 0) against x at ±127: the int16 sums of two quads reach 2 · 2 · 63 · 127 = 32004; int8
  // scales at −128 and 127; the −32 offset taken off through x's sums of 16.
  test('q = 63 or 0, scales −128 / 127, x at ±max: native equals the reference', () => {
    const k = 512;
    const n = 11;
    const data = new Uint8Array(weightFormat('q6_k').bytes(n, k));
    for (let row = 0; row < n; row++) {
      for (let b = 0; b < 2; b++) {
        const at = (row * 2 + b) * 210;
        data.fill(row % 3 === 0 ? 0 : 0xff, at, at + 192); // q = 63 everywhere (or 0)
        for (let j = 0; j < 16; j++) data[at + 192 + j] = (row + j) % 2 === 0 ? 0x80 : 0x7f; // −128 / 127
        const bits = f32ToF16(row === 5 ? 65504 : row === 7 ? 2 ** -24 : 0.5); // largest f16, smallest subnormal
        data[at + 208] = bits & 0xff;
        data[at + 209] = bits >> 8;
      }
    }
    const w: WeightMatrix = { dtype: 'q6_k', rows: n, cols: k, data };
    const x = new Float32Array(4 * k);
    for (let i = 0; i < k; i++) {
      x[i] = 1; // all +127
      x[k + i] = -3; // all −127
      x[2 * k + i] = i % 2 === 0 ? 1 : -1;
      x[3 * k + i] = i < 256 ? 1 : -1e-3; // one block at +127, the other small
    }
    const want = runGemm(referenceKernels, w, x, 4, new Float32Array(4 * n));
    assert.ok(want.every(Number.isFinite));
    assert.ok(
      want.some((v) => Math.abs(v) > 1e9),
      'the largest scale reached',
    );
    for (const impl of nativeImplementations()) {
      impl.activate();
      assertBitwise(runGemm(impl.kernels, w, x, 4, new Float32Array(4 * n)), want, impl.name);
    }
  });
});

describe('qgemm: q6_k for every tile height', () => {
  after(restoreDefaults);
  test('M = 1…9 (tiles of 1 to 4 rows and their remainders), raw blocks, N = 13', () => {
    const k = 512;
    const n = 13;
    const w = rawWeight('q6_k', n, k, 77);
    for (let m = 1; m <= 9; m++) {
      const r = rng(80 + m);
      const x = r.f32(m * k, 2);
      const bias = r.f32(n);
      const want = runGemm(referenceKernels, w, x, m, new Float32Array(m * n), bias);
      for (const impl of nativeImplementations()) {
        impl.activate();
        assertBitwise(runGemm(impl.kernels, w, x, m, new Float32Array(m * n), bias), want, `${impl.name} M=${m}`);
      }
    }
  });
});

describe('qgemm: error against the exact f32 GEMM on the dequantized weights', () => {
  for (const type of TYPES) {
    test(`${type}: within x's quantization bound`, () => {
      const m = 5;
      const n = 23;
      const k = 4 * QGEMM_BLOCK[type];
      const w = quantizedWeight(type, n, k, 41);
      const values = weightFormat(type).decode(w);
      const r = rng(42);
      const x = r.f32(m * k, 3);
      const bias = r.f32(n);
      const y0 = r.f32(m * n);
      const exact = runGemm(referenceKernels, { dtype: 'f32', rows: n, cols: k, data: values }, x, m, y0, bias, true);
      const block = QGEMM_BLOCK[type];
      let worstRatio = 0;
      for (const impl of [
        { name: 'reference', kernels: referenceKernels, activate() {} },
        ...nativeImplementations(),
      ]) {
        impl.activate();
        const got = runGemm(impl.kernels, w, x, m, y0, bias, true);
        for (let row = 0; row < m; row++) {
          const { d } = quantizeRow(x.subarray(row * k, (row + 1) * k), type);
          // dx / 2 per value, plus (Q8_0) the f16 rounding of the scale: |q| ≤ 127 steps of ≤ 2^-11 · dx.
          const step = type === 'q8_0' ? (0.5 + 127 * 2 ** -11) / (1 - 2 ** -11) : 0.5;
          for (let j = 0; j < n; j++) {
            let bound = 0;
            let mag = Math.abs(bias[j]) + Math.abs(y0[row * n + j]);
            for (let i = 0; i < k; i++) {
              bound += Math.abs(values[j * k + i]) * d[Math.floor(i / block)] * step;
              mag += Math.abs(x[row * k + i] * values[j * k + i]);
            }
            const err = Math.abs(got[row * n + j] - exact[row * n + j]);
            const limit = bound + 2e-6 * mag;
            assert.ok(err <= limit, `${impl.name} y[${row}, ${j}]: |Δ| ${err} > ${limit}`);
            worstRatio = Math.max(worstRatio, err / limit);
          }
        }
      }
      assert.ok(worstRatio > 0, 'the quantized path differs from the exact one somewhere');
    });
  }
});

describe('qgemm: batch invariance (bitwise, per ISA)', () => {
  after(restoreDefaults);
  for (const impl of nativeImplementations()) {
    for (const type of TYPES) {
      test(`${impl.name} ${type}: a row's result does not depend on M, its position, the other rows or threads`, () => {
        impl.activate();
        const k = 3 * QGEMM_BLOCK[type];
        const n = 71;
        const packed = impl.kernels.packWeight(quantizedWeight(type, n, k, 11));
        const r = rng(12);
        const row = r.f32(k);
        const bias = r.f32(n);
        const yRow = r.f32(n);
        const alone = yRow.slice();
        impl.kernels.gemm(row, packed, alone, 1, bias, true);
        for (const m of [1, 3, 6, 17, 64]) {
          for (const pos of new Set([0, m >> 1, m - 1])) {
            const x = r.f32(m * k, 3);
            x.set(row, pos * k);
            const y = r.f32(m * n);
            y.set(yRow, pos * n);
            impl.kernels.gemm(x, packed, y, m, bias, true);
            assertBitwise(y.subarray(pos * n, (pos + 1) * n), alone, `M=${m} row ${pos}`);
          }
        }
        const m = 40;
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

describe('qgemm: argument checks', () => {
  for (const kernels of [referenceKernels, nativeImplementations()[0].kernels]) {
    test(`${kernels.name}: rows that are not whole blocks, short data and the wrong array type are refused`, () => {
      const block = weightFormat('q8_0');
      assert.throws(
        () => kernels.packWeight({ dtype: 'q8_0', rows: 2, cols: 48, data: new Uint8Array(200) }),
        TypeError,
      );
      assert.throws(
        () => kernels.packWeight({ dtype: 'q8_0', rows: 2, cols: 64, data: new Uint8Array(block.bytes(2, 64) - 1) }),
        TypeError,
      );
      assert.throws(
        () => kernels.packWeight({ dtype: 'q4_k', rows: 1, cols: 256, data: new Uint16Array(72) }),
        TypeError,
      );
      const w = kernels.packWeight(quantizedWeight('q8_0', 3, 64, 1));
      assert.throws(() => kernels.gemm(new Float32Array(63), w, new Float32Array(3), 1), TypeError);
      assert.throws(() => kernels.gemm(new Float32Array(64), w, new Float32Array(2), 1), TypeError);
    });
  }
});

describe('qgemm: the bytes a packed weight holds', () => {
  // Per 8-row group: Q8_0 32 q + 4 (f32 d) bytes a 32-value block; Q4_K 128 q + 8 (f32 d, dmin) + 24 (sc doubled,
  // m) a 256-value block; Q6_K 128 ql + 4 (f32 d) + 80 (qh, sc) — the last group padded to 8 rows.
  const perRowBlock: Record<BlockDType, number> = { q8_0: 36, q4_k: 160, q6_k: 212 };
  for (const dtype of TYPES)
    test(`${dtype}: heldBytes counts the re-laid blocks, padding rows included`, () => {
      const kernels = nativeImplementations()[0].kernels;
      const cols = 2 * QGEMM_BLOCK[dtype];
      const w = kernels.packWeight(quantizedWeight(dtype, 13, cols, 5)) as { heldBytes?: number };
      assert.equal(w.heldBytes, 16 * 2 * perRowBlock[dtype]);
    });
});
