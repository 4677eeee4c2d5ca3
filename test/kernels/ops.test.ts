/**
 * Elementwise ops (rmsNorm, siluMul, addInPlace, embedding): native under every ISA against the reference,
 * row invariance (bitwise: alone vs in a batch, any thread count), edge values, argument validation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeOpsKernels } from '../../src/kernels/native/ops.ts';
import { referenceOpsKernels } from '../../src/kernels/reference/ops.ts';
import type { WeightMatrix } from '../../src/kernels/types.ts';
import { f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { assertBitwise, availableIsas, restoreDefaults, rng, withThreads } from './implementations.ts';

const isas = availableIsas();
after(restoreDefaults);

/** max |a - b| / (|b| + floor): relative error with an absolute floor near zero. */
function maxRelDiff(a: Float32Array, b: Float32Array, floor = 1e-6): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + floor);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

const dims = [1, 7, 16, 63, 64, 100, 257, 4099];

describe('rmsNorm', () => {
  for (const dim of dims) {
    test(`dim ${dim}: native under every ISA matches the reference`, () => {
      const r = rng(dim);
      const rows = dim > 1000 ? 3 : 9;
      const x = r.f32(rows * dim, 4);
      x[0] = 0; // a zero row element and a tiny-scale row still normalise
      const weight = r.f32(dim, 2);
      const expected = new Float32Array(rows * dim);
      referenceOpsKernels.rmsNorm(x, weight, expected, rows, dim, 1e-5);
      for (const isa of isas) {
        setIsa(isa);
        const out = new Float32Array(rows * dim);
        nativeOpsKernels.rmsNorm(x, weight, out, rows, dim, 1e-5);
        assert.ok(maxRelDiff(out, expected) < 2e-6, `${isa}: ${maxRelDiff(out, expected)}`);
      }
    });
  }

  for (const isa of isas) {
    test(`${isa}: a row gives the same bits alone, in a batch, in place and with any thread count`, () => {
      setIsa(isa);
      const dim = 2048 + 5;
      const rows = 40;
      const r = rng(3);
      const x = r.f32(rows * dim, 3);
      const weight = r.f32(dim);
      const serial = new Float32Array(rows * dim);
      withThreads(1, () => nativeOpsKernels.rmsNorm(x, weight, serial, rows, dim, 1e-6));
      const threaded = new Float32Array(rows * dim);
      withThreads(3, () => nativeOpsKernels.rmsNorm(x, weight, threaded, rows, dim, 1e-6));
      assertBitwise(threaded, serial, 'threads');
      const alone = new Float32Array(dim);
      nativeOpsKernels.rmsNorm(x.subarray(17 * dim, 18 * dim), weight, alone, 1, dim, 1e-6);
      assertBitwise(alone, serial.subarray(17 * dim, 18 * dim), 'row 17 alone');
      const inPlace = x.slice();
      nativeOpsKernels.rmsNorm(inPlace, weight, inPlace, rows, dim, 1e-6);
      assertBitwise(inPlace, serial, 'in place');
    });
  }

  test('Hugging Face semantics: weight · (x / √(mean(x²) + eps))', () => {
    const x = Float32Array.from([3, 4]); // mean(x²) = 12.5
    const out = new Float32Array(2);
    for (const k of [referenceOpsKernels, nativeOpsKernels]) {
      k.rmsNorm(x, Float32Array.from([1, 2]), out, 1, 2, 0);
      assert.ok(Math.abs(out[0] - 3 / Math.sqrt(12.5)) < 1e-6);
      assert.ok(Math.abs(out[1] - (2 * 4) / Math.sqrt(12.5)) < 1e-6);
    }
  });
});

describe('siluMul', () => {
  for (const inter of [1, 5, 16, 33, 1000, 11008]) {
    test(`inter ${inter}: native under every ISA matches the reference (gates up to ±120)`, () => {
      const r = rng(inter);
      const rows = inter > 5000 ? 2 : 7;
      const gateUp = r.f32(rows * 2 * inter, 8);
      for (let i = 0; i < gateUp.length; i += 13) gateUp[i] = (r.next() * 2 - 1) * 120; // exp over/underflow
      const expected = new Float32Array(rows * inter);
      referenceOpsKernels.siluMul(gateUp, expected, rows, inter);
      for (const isa of isas) {
        setIsa(isa);
        const out = new Float32Array(rows * inter).fill(Number.NaN);
        nativeOpsKernels.siluMul(gateUp, out, rows, inter);
        assert.ok(maxRelDiff(out, expected, 1e-30) < 4e-6, `${isa}: ${maxRelDiff(out, expected, 1e-30)}`);
      }
    });
  }

  for (const isa of isas) {
    test(`${isa}: rows are independent of the batch and the thread count (bitwise)`, () => {
      setIsa(isa);
      const inter = 3000;
      const rows = 12;
      const gateUp = rng(8).f32(rows * 2 * inter, 6);
      const serial = new Float32Array(rows * inter);
      withThreads(1, () => nativeOpsKernels.siluMul(gateUp, serial, rows, inter));
      const threaded = new Float32Array(rows * inter);
      withThreads(3, () => nativeOpsKernels.siluMul(gateUp, threaded, rows, inter));
      assertBitwise(threaded, serial, 'threads');
      const alone = new Float32Array(inter);
      nativeOpsKernels.siluMul(gateUp.subarray(5 * 2 * inter, 6 * 2 * inter), alone, 1, inter);
      assertBitwise(alone, serial.subarray(5 * inter, 6 * inter), 'row 5 alone');
    });
  }

  test('silu(0) = 0, silu(large) = large, silu(very negative) = -0', () => {
    for (const isa of isas) {
      setIsa(isa);
      const out = new Float32Array(3);
      nativeOpsKernels.siluMul(Float32Array.from([0, 100, -200, 2, 2, 2]), out, 1, 3);
      assert.deepEqual([...out], [0, 200, -0]);
    }
  });
});

describe('addInPlace', () => {
  for (const length of [0, 1, 15, 16, 17, 100003]) {
    test(`length ${length}: native under every ISA is exactly the reference; the tail past length is untouched`, () => {
      const r = rng(length + 1);
      const x = r.f32(length + 3);
      const y = r.f32(length + 3);
      const expected = x.slice();
      referenceOpsKernels.addInPlace(expected, y, length);
      for (const isa of isas) {
        setIsa(isa);
        const got = x.slice();
        nativeOpsKernels.addInPlace(got, y, length);
        assertBitwise(got, expected, isa);
      }
      assert.deepEqual([...expected.subarray(length)], [...x.subarray(length)]);
    });
  }
});

describe('embedding', () => {
  const vocab = 37;
  const dim = 45;
  const values = rng(11).f32(vocab * dim, 3);
  values[5] = 1e-6; // f16 subnormal
  values[6] = 70000; // f16 overflow → inf
  values[7] = -0;
  const tables: WeightMatrix[] = [
    { dtype: 'f32', rows: vocab, cols: dim, data: values },
    { dtype: 'f16', rows: vocab, cols: dim, data: Uint16Array.from(values, f32ToF16) },
    { dtype: 'bf16', rows: vocab, cols: dim, data: Uint16Array.from(values, f32ToBf16) },
  ];
  const ids = Int32Array.from([0, 36, 5, 5, 17, 0, 1]);
  for (const table of tables) {
    test(`${table.dtype}: native under every ISA is exactly the reference`, () => {
      const expected = new Float32Array(ids.length * dim);
      referenceOpsKernels.embedding(ids, table, expected, ids.length);
      for (const isa of isas) {
        setIsa(isa);
        const out = new Float32Array(ids.length * dim).fill(Number.NaN);
        nativeOpsKernels.embedding(ids, table, out, ids.length);
        assertBitwise(out, expected, isa);
      }
    });
  }
  test('f16 edge values widen exactly (subnormal, inf, -0)', () => {
    const out = new Float32Array(dim);
    nativeOpsKernels.embedding(Int32Array.from([0]), tables[1], out, 1);
    assert.ok(out[5] > 0 && out[5] < 6.2e-5 && Math.abs(out[5] - 1e-6) < 1e-7);
    assert.equal(out[6], Number.POSITIVE_INFINITY);
    assert.ok(Object.is(out[7], -0));
  });
});

describe('ops: bad arguments throw, never crash', () => {
  for (const [name, k] of [
    ['reference', referenceOpsKernels],
    ['native', nativeOpsKernels],
  ] as const) {
    test(`${name}: short buffers, bad sizes and out-of-range ids`, () => {
      const x = new Float32Array(8);
      assert.throws(() => k.rmsNorm(x, new Float32Array(4), x, 3, 4, 1e-6), RangeError);
      assert.throws(() => k.rmsNorm(x, new Float32Array(3), x, 2, 4, 1e-6), RangeError);
      assert.throws(() => k.rmsNorm(x, new Float32Array(4), x, 2, 0, 1e-6), RangeError);
      assert.throws(() => k.rmsNorm(x, new Float32Array(4), x, 2, 4, Number.NaN), RangeError);
      assert.throws(() => k.rmsNorm(x, new Float32Array(4), x, 1.5, 4, 1e-6), RangeError);
      assert.throws(() => k.siluMul(x, new Float32Array(4), 2, 4), RangeError);
      assert.throws(() => k.siluMul(x, new Float32Array(1), 1, 4), RangeError);
      assert.throws(() => k.addInPlace(x, new Float32Array(4), 8), RangeError);
      assert.throws(() => k.addInPlace(x, x, -1), RangeError);
      const table: WeightMatrix = { dtype: 'f32', rows: 2, cols: 4, data: x };
      const out = new Float32Array(8);
      assert.throws(() => k.embedding(Int32Array.from([0, 2]), table, out, 2), RangeError);
      assert.throws(() => k.embedding(Int32Array.from([-1]), table, out, 1), RangeError);
      assert.throws(() => k.embedding(Int32Array.from([0]), { ...table, rows: 3 }, out, 1), RangeError);
      assert.throws(() => k.embedding(Int32Array.from([0, 1]), table, new Float32Array(7), 2), RangeError);
      assert.throws(() => k.embedding(Int32Array.from([0]), { ...table, dtype: 'bf16' }, out, 1), TypeError);
      k.rmsNorm(x, new Float32Array(4), x, 0, 4, 1e-6);
      k.embedding(new Int32Array(0), table, out, 0);
    });
  }
  test('native: siluMul refuses an out that overlaps gateUp', () => {
    const buf = new Float32Array(16);
    assert.throws(() => nativeOpsKernels.siluMul(buf, buf.subarray(4, 8), 2, 4), RangeError);
  });
});
