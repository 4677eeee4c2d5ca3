/**
 * int8 LoRA banks: setLoraSlot quantizes each row of A and of Bt (quantizeRowInt8: absmax / 127 scale, values
 * rounded half to even), the kernels read the values widened exactly and apply the row scales to h; under every
 * ISA, against the reference (bitwise where the arithmetic has one order), and against an f32 bank within the
 * quantization's error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { quantizeRowInt8 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, maxAbsDiff, restoreDefaults, rng } from './implementations.ts';
import { applied, bankOf, close, type LoraKernels, makeAdapter, ODD_LAYOUT, throughOneRow } from './lora-fixtures.ts';

describe('quantizeRowInt8 (the reference of every int8 bank)', () => {
  const quantize = (values: number[]) => {
    const q = new Float32Array(values.length);
    const s = quantizeRowInt8(Float32Array.from(values), 0, values.length, q, 0);
    return { s, q: [...q] };
  };

  test('scale absmax / 127 in f32; values rounded half to even; the absmax lands on ±127', () => {
    const { s, q } = quantize([127, -127, 0.5, 1.5, 2.5, -0.5, -2.5, 63.49, 0]);
    assert.equal(s, 1);
    assert.deepEqual(q, [127, -127, 0, 2, 2, 0, -2, 63, 0]);
    const r = quantize([-3.25, 1e-3, 2]);
    assert.equal(r.s, Math.fround(3.25 / 127));
    assert.equal(r.q[0], -127);
    assert.ok(Object.is(r.q[1], 0), 'no -0');
  });

  test('a zero row has scale 0 and zeros; a non-finite value makes the scale NaN and the row 0', () => {
    assert.deepEqual(quantize([0, 0, -0]), { s: 0, q: [0, 0, 0] });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const { s, q } = quantize([1, bad, -2]);
      assert.ok(Number.isNaN(s));
      assert.deepEqual(q, [0, 0, 0]);
    }
  });
});

for (const isa of availableIsas()) {
  describe(`int8 LoRA banks, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    test('setLoraSlot quantizes as the reference does: ties, clamps, tiny and huge rows, every value bitwise', () => {
      const r = rng(74);
      const rows = [
        Float32Array.from([127, -127, 0.5, 1.5, 2.5, -0.5, -2.5, 63.5, 64.5, -64.5, 0.25, 3e-3]),
        r.f32(1536),
        r.f32(129).map((v) => v * 1e-30), // tiny: the scale is subnormal-adjacent
        r.f32(53).map((v) => v * 1e30), // huge
        Float32Array.from([1e-45, -1e-45, 0]), // amax / 127 underflows to 0: the row is zeros
      ];
      for (const values of rows) {
        assertBitwise(
          throughOneRow(native, 'int8', values),
          throughOneRow(referenceLoraKernels, 'int8', values),
          `${values.length}`,
        );
      }
      const zeros = throughOneRow(native, 'int8', Float32Array.from([1e-45, -1e-45, 0]));
      assert.deepEqual([...zeros], [0, 0, 0]);
      const nan = throughOneRow(native, 'int8', Float32Array.from([1, Number.POSITIVE_INFINITY, 2]));
      assert.ok(nan.every(Number.isNaN), 'a non-finite weight gives non-finite outputs');
    });

    test('an int8 bank matches the reference on random layouts, and an f32 bank within the quantization error', () => {
      const r = rng(75);
      const { k: K, ns, modules, yStride } = ODD_LAYOUT;
      const adapters = ODD_LAYOUT.ranks.map((ranks) => makeAdapter(r, K, ns, ranks));
      const nb = bankOf(native, adapters, ns.length, 'int8');
      const rb = bankOf(referenceLoraKernels, adapters, ns.length, 'int8');
      const nf = bankOf(native, adapters, ns.length, 'f32');
      for (const rows of [1, 9, 33]) {
        const x = r.f32(rows * K);
        const y0 = new Float32Array(rows * yStride);
        const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
        const run = (kernels: LoraKernels, bank: LoraBank) => applied(kernels, bank, slots, x, K, y0, yStride, modules);
        const yq = run(native, nb);
        close(yq, run(referenceLoraKernels, rb), `${rows} rows`);
        // Each weight moves by at most half a step (amax / 254) of its row: relative to the delta itself,
        // about 1 %; a wrong scale, row or sign would be off by the delta's whole size.
        const yf = run(native, nf);
        const size = maxAbsDiff(yf, y0);
        const diff = maxAbsDiff(yq, yf);
        if (size > 0) assert.ok(diff < 0.05 * size, `int8 vs f32 max |diff| ${diff} of a delta up to ${size}`);
      }
    });
  });
}
