/**
 * Elementwise ops (rmsNorm, rmsNormHeads, siluMul, geluTanhMul, addInPlace, softcapInPlace, scaleInPlace,
 * embedding): native under every ISA against the reference (GeLU and soft-capping against float64),
 * row invariance (bitwise: alone vs in a batch, any thread count), edge values, argument validation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeOpsKernels } from '../../src/kernels/native/ops.ts';
import { geluTanh, referenceOpsKernels } from '../../src/kernels/reference/ops.ts';
import type { WeightMatrix } from '../../src/kernels/types.ts';
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

describe('rmsNormHeads (q_norm / k_norm on fused q|k|v rows)', () => {
  for (const [hq, hkv, headDim] of [
    [4, 2, 128],
    [3, 1, 7],
    [16, 8, 256],
    [1, 1, 1],
  ]) {
    test(`Hq/Hkv=${hq}/${hkv} D=${headDim}: q and k heads normalised as rmsNorm rows, v untouched; native under every ISA`, () => {
      const r = rng(hq * 100 + headDim);
      const rows = headDim > 200 ? 3 : 5;
      const stride = (hq + 2 * hkv) * headDim;
      const x = r.f32(rows * stride + 3, 3); // 3 values past the last row stay as they are
      const qWeight = r.f32(headDim, 2);
      const kWeight = r.f32(headDim, 2);
      // The expected values: rmsNorm of each head, gathered as rows.
      const expected = x.slice();
      const gather = (offset: number, heads: number, weight: Float32Array) => {
        const rowsOf = new Float32Array(rows * heads * headDim);
        for (let t = 0; t < rows; t++)
          rowsOf.set(x.subarray(t * stride + offset, t * stride + offset + heads * headDim), t * heads * headDim);
        referenceOpsKernels.rmsNorm(rowsOf, weight, rowsOf, rows * heads, headDim, 1e-6);
        for (let t = 0; t < rows; t++)
          expected.set(rowsOf.subarray(t * heads * headDim, (t + 1) * heads * headDim), t * stride + offset);
      };
      gather(0, hq, qWeight);
      gather(hq * headDim, hkv, kWeight);
      const run = (k: typeof referenceOpsKernels) => {
        const got = x.slice();
        k.rmsNormHeads(got, rows, stride, 0, hq, headDim, qWeight, 1e-6);
        k.rmsNormHeads(got, rows, stride, hq * headDim, hkv, headDim, kWeight, 1e-6);
        return got;
      };
      assertBitwise(run(referenceOpsKernels), expected, 'reference');
      for (const isa of isas) {
        setIsa(isa);
        const got = run(nativeOpsKernels);
        assert.ok(maxRelDiff(got, expected) < 2e-6, `${isa}: ${maxRelDiff(got, expected)}`);
        const vFrom = (hq + hkv) * headDim;
        for (let t = 0; t < rows; t++)
          assertBitwise(
            got.subarray(t * stride + vFrom, (t + 1) * stride),
            x.subarray(t * stride + vFrom, (t + 1) * stride),
            `${isa}: v of row ${t}`,
          );
        assertBitwise(got.subarray(rows * stride), x.subarray(rows * stride), `${isa}: past the rows`);
        // a head gives the bits native rmsNorm gives its row
        const head = x.slice(stride + headDim * (hq - 1), stride + headDim * hq);
        nativeOpsKernels.rmsNorm(head, qWeight, head, 1, headDim, 1e-6);
        assertBitwise(
          got.subarray(stride + headDim * (hq - 1), stride + headDim * hq),
          head,
          `${isa}: row 1, last q head`,
        );
      }
    });
  }
});

/** |got - exact| ≤ rel·|exact| + abs (abs: one floor, or one per element); returns the worst ratio to that bound. */
function worstAgainstBound(got: Float32Array, exact: Float64Array, rel: number, abs: number | Float64Array): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const floor = typeof abs === 'number' ? abs : abs[i];
    const ratio = Math.abs(got[i] - exact[i]) / (rel * Math.abs(exact[i]) + floor);
    if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Number.POSITIVE_INFINITY : ratio;
  }
  return worst;
}

describe('geluTanhMul (Gemma GeGLU)', () => {
  // Bound against float64 gelu_tanh(g)·u: 2e-6·|exact| + 1e-6·|u| (the absolute part: f32 cancellation in
  // 1 + tanh for g ≈ -3..-8, about 1.5e-7·|u| measured).
  for (const inter of [1, 5, 16, 33, 1000, 9216]) {
    test(`inter ${inter}: reference and native under every ISA within 2e-6·|exact| + 1e-6·|up| of float64 (gates up to ±40)`, () => {
      const r = rng(inter + 5);
      const rows = inter > 5000 ? 2 : 7;
      const gateUp = r.f32(rows * 2 * inter, 8);
      for (let i = 0; i < gateUp.length; i += 11) gateUp[i] = (r.next() * 2 - 1) * 40;
      const exact = new Float64Array(rows * inter);
      const absFloor = new Float64Array(rows * inter);
      for (let t = 0; t < rows; t++)
        for (let i = 0; i < inter; i++) {
          const up = gateUp[t * 2 * inter + inter + i];
          exact[t * inter + i] = geluTanh(gateUp[t * 2 * inter + i]) * up;
          absFloor[t * inter + i] = 1e-6 * Math.abs(up) + 1e-30;
        }
      const reference = new Float32Array(rows * inter);
      referenceOpsKernels.geluTanhMul(gateUp, reference, rows, inter);
      assert.ok(worstAgainstBound(reference, exact, 2e-6, absFloor) <= 1, 'reference');
      for (const isa of isas) {
        setIsa(isa);
        const out = new Float32Array(rows * inter).fill(Number.NaN);
        nativeOpsKernels.geluTanhMul(gateUp, out, rows, inter);
        const worst = worstAgainstBound(out, exact, 2e-6, absFloor);
        assert.ok(worst <= 1, `${isa}: ${worst} of the bound`);
      }
    });
  }

  test('torch values: gelu_tanh(1) = 0.8411920, gelu_tanh(-1) = -0.1588080, gelu_tanh(0) = 0, large gates', () => {
    for (const k of [referenceOpsKernels, nativeOpsKernels]) {
      for (const isa of k === nativeOpsKernels ? isas : ['reference']) {
        if (k === nativeOpsKernels) setIsa(isa as (typeof isas)[number]);
        const out = new Float32Array(5);
        k.geluTanhMul(Float32Array.from([1, -1, 0, 100, -100, 1, 1, 1, 2, 2]), out, 1, 5);
        assert.ok(Math.abs(out[0] - 0.841192) < 1e-6 && Math.abs(out[1] + 0.158808) < 1e-6, `${isa}: ${out}`);
        assert.equal(out[2], 0);
        assert.equal(out[3], 200);
        assert.ok(Math.abs(out[4]) === 0, `${isa}: gelu(-100)·2 = ${out[4]}`);
      }
    }
  });

  for (const isa of isas) {
    test(`${isa}: rows are independent of the batch and the thread count (bitwise)`, () => {
      setIsa(isa);
      const inter = 3000;
      const rows = 12;
      const gateUp = rng(9).f32(rows * 2 * inter, 6);
      const serial = new Float32Array(rows * inter);
      withThreads(1, () => nativeOpsKernels.geluTanhMul(gateUp, serial, rows, inter));
      const threaded = new Float32Array(rows * inter);
      withThreads(3, () => nativeOpsKernels.geluTanhMul(gateUp, threaded, rows, inter));
      assertBitwise(threaded, serial, 'threads');
      const alone = new Float32Array(inter);
      nativeOpsKernels.geluTanhMul(gateUp.subarray(5 * 2 * inter, 6 * 2 * inter), alone, 1, inter);
      assertBitwise(alone, serial.subarray(5 * inter, 6 * inter), 'row 5 alone');
    });
  }
});

describe('softcapInPlace and scaleInPlace (Gemma logits and embeddings)', () => {
  for (const length of [0, 1, 15, 16, 17, 100003]) {
    test(`length ${length}: softcap within 1e-6 relative of float64 (cap 30, x up to ±300), scale bitwise; tail untouched`, () => {
      const r = rng(length + 2);
      const x = r.f32(length + 3, 300);
      for (let i = 1; i < length; i += 7) x[i] *= 1e-4; // near 0: the polynomial branch of tanh
      const exact = Float64Array.from(x.subarray(0, length), (v) => 30 * Math.tanh(v / 30));
      const scaled = x.slice();
      referenceOpsKernels.scaleInPlace(scaled, length, Math.sqrt(2304));
      for (const k of [referenceOpsKernels, nativeOpsKernels]) {
        for (const isa of k === nativeOpsKernels ? isas : ['reference']) {
          if (k === nativeOpsKernels) setIsa(isa as (typeof isas)[number]);
          const got = x.slice();
          k.softcapInPlace(got, length, 30);
          const worst = worstAgainstBound(got.subarray(0, length), exact, 1e-6, 1e-30);
          assert.ok(worst <= 1, `${isa}: softcap at ${worst} of the bound`);
          assertBitwise(got.subarray(length), x.subarray(length), `${isa}: softcap tail`);
          const s = x.slice();
          k.scaleInPlace(s, length, Math.sqrt(2304));
          assertBitwise(s, scaled, `${isa}: scale`);
        }
      }
      for (let i = 0; i < length; i++) assert.equal(scaled[i], Math.fround(x[i] * 48));
    });
  }
});

describe('rmsNormHeads, geluTanhMul, softcapInPlace, scaleInPlace: bad arguments throw', () => {
  for (const [name, k] of [
    ['reference', referenceOpsKernels],
    ['native', nativeOpsKernels],
  ] as const) {
    test(`${name}: short buffers, heads past the row, bad caps and factors`, () => {
      const x = new Float32Array(24);
      const w = new Float32Array(4);
      assert.throws(() => k.rmsNormHeads(x, 2, 12, 8, 2, 4, w, 1e-6), RangeError); // heads past the row
      assert.throws(() => k.rmsNormHeads(x, 3, 12, 0, 2, 4, w, 1e-6), RangeError); // x too short
      assert.throws(() => k.rmsNormHeads(x, 2, 12, 0, 2, 4, new Float32Array(3), 1e-6), RangeError);
      assert.throws(() => k.rmsNormHeads(x, 2, 12, 0, 2, 0, w, 1e-6), RangeError);
      assert.throws(() => k.rmsNormHeads(x, 2, 12, -1, 2, 4, w, 1e-6), RangeError);
      assert.throws(() => k.rmsNormHeads(x, 2, 12, 0, 2, 4, w, -1), RangeError);
      k.rmsNormHeads(x, 2, 12, 4, 2, 4, w, 1e-6); // the last heads end the row
      k.rmsNormHeads(x, 0, 12, 0, 2, 4, w, 1e-6);
      assert.throws(() => k.geluTanhMul(x, new Float32Array(4), 2, 8), RangeError);
      assert.throws(() => k.geluTanhMul(x, new Float32Array(1), 1, 4), RangeError);
      assert.throws(() => k.softcapInPlace(x, 25, 30), RangeError);
      for (const cap of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e40])
        assert.throws(() => k.softcapInPlace(x, 4, cap), RangeError, `cap ${cap}`);
      assert.throws(() => k.scaleInPlace(x, 25, 2), RangeError);
      for (const factor of [Number.NaN, Number.POSITIVE_INFINITY, 1e40])
        assert.throws(() => k.scaleInPlace(x, 4, factor), RangeError, `factor ${factor}`);
      assert.throws(() => k.scaleInPlace(x, 1.5, 2), RangeError);
    });
  }
  test('native: geluTanhMul refuses an out that overlaps gateUp; rmsNormHeads a weight inside x', () => {
    const buf = new Float32Array(16);
    assert.throws(() => nativeOpsKernels.geluTanhMul(buf, buf.subarray(4, 8), 2, 4), RangeError);
    assert.throws(() => nativeOpsKernels.rmsNormHeads(buf, 1, 8, 0, 2, 4, buf.subarray(12, 16), 1e-6), RangeError);
  });
});
