/**
 * Output scales (DoRA: PackedAdapter.outScale / offsetOutScale): a slot's rows become y = s · (y + delta) per
 * column, in f32 whatever the bank's dtype; next to plain LoRA slots and base rows in one applyAdapters call,
 * native under every ISA against the reference, bitwise the plain delta then one f32 product, batch invariant,
 * and argument validation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraDtype, LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, type Rng, restoreDefaults, rng, withThreads } from './implementations.ts';
import { applied, bankOf, close, eachRowAlone, makeAdapter } from './lora-fixtures.ts';

/** The adapter with output scales (around 1, as DoRA's magnitude / norm) on the modules where `on[m]`. */
function withOutScale(r: Rng, adapter: PackedAdapter, on: boolean[]): PackedAdapter {
  const offsetOutScale = new Int32Array(on.length).fill(-1);
  const parts: number[] = [0.5]; // one leading value, so offsets are not all zero
  on.forEach((yes, m) => {
    if (!yes) return;
    offsetOutScale[m] = parts.length;
    for (let c = 0; c < adapter.outFeatures[m]; c++) parts.push(0.5 + r.next());
  });
  return { ...adapter, outScale: Float32Array.from(parts), offsetOutScale };
}

/** What an output-scaled slot must give: the plain delta added, then one f32 product per column. */
function rescaled(
  plain: Float32Array,
  adapters: PackedAdapter[],
  rowSlot: Int32Array,
  yStride: number,
  modules: LoraModuleOutput[],
) {
  const y = plain.slice();
  for (let t = 0; t < rowSlot.length; t++) {
    const a = adapters[rowSlot[t]];
    if (!a?.offsetOutScale) continue;
    for (const { module, yOffset, n } of modules) {
      const at = a.offsetOutScale[module];
      if (at < 0) continue;
      for (let c = 0; c < n; c++)
        y[t * yStride + yOffset + c] = Math.fround(y[t * yStride + yOffset + c] * a.outScale![at + c]);
    }
  }
  return y;
}

const K = 67;
const NS = [53, 21, 130];
const MODULES: LoraModuleOutput[] = [
  { module: 2, yOffset: 0, n: 130 },
  { module: 0, yOffset: 131, n: 53 },
  { module: 1, yOffset: 184, n: 21 },
];
const Y_STRIDE = 207;

for (const isa of availableIsas()) {
  describe(`output scales (DoRA), native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of ['f32', 'bf16', 'f16'] as LoraDtype[])
      test(`${dtype} bank: a DoRA slot next to LoRA slots and base rows: the reference, and plain delta · s bitwise`, () => {
        const r = rng(dtype === 'f32' ? 81 : dtype === 'bf16' ? 82 : 83);
        const lora = [
          makeAdapter(r, K, NS, [8, 3, 16]),
          makeAdapter(r, K, NS, [1, 0, 128]),
          makeAdapter(r, K, NS, [5, 7, 0]),
        ];
        // Slot 0: every module scaled; slot 1: only module 2 (module 1 untargeted); slot 2 plain LoRA.
        const dora = [
          withOutScale(r, lora[0], [true, true, true]),
          withOutScale(r, lora[1], [false, false, true]),
          lora[2],
        ];
        const nb = bankOf(native, dora, NS.length, dtype);
        const rb = bankOf(referenceLoraKernels, dora, NS.length, dtype);
        const plain = bankOf(native, lora, NS.length, dtype);
        const plainRef = bankOf(referenceLoraKernels, lora, NS.length, dtype);
        for (const rows of [1, 2, 9, 40]) {
          const x = r.f32(rows * K);
          const y0 = r.f32(rows * Y_STRIDE);
          const rowSlot = Int32Array.from({ length: rows }, (_, t) => (t === 0 ? 0 : r.int(-1, 2)));
          const what = `${rows} rows, slots ${rowSlot}`;
          const yn = applied(native, nb, rowSlot, x, K, y0, Y_STRIDE, MODULES);
          const yr = applied(referenceLoraKernels, rb, rowSlot, x, K, y0, Y_STRIDE, MODULES);
          close(yn, yr, what);
          const expected = rescaled(
            applied(native, plain, rowSlot, x, K, y0, Y_STRIDE, MODULES),
            dora,
            rowSlot,
            Y_STRIDE,
            MODULES,
          );
          assertBitwise(yn, expected, `native: plain delta, then s, ${what}`);
          const expectedRef = rescaled(
            applied(referenceLoraKernels, plainRef, rowSlot, x, K, y0, Y_STRIDE, MODULES),
            dora,
            rowSlot,
            Y_STRIDE,
            MODULES,
          );
          assertBitwise(yr, expectedRef, `reference: plain delta, then s, ${what}`);
          // Gap columns (130, 183 .. 184, 205 ..) and base rows stay as they were.
          for (let t = 0; t < rows; t++) {
            const row = (y: Float32Array) => y.subarray(t * Y_STRIDE, (t + 1) * Y_STRIDE);
            if (rowSlot[t] === -1) assertBitwise(row(yn), row(y0), `base row ${t}`);
            for (const c of [130, 205, 206]) assert.equal(row(yn)[c], row(y0)[c], `row ${t}, gap column ${c}`);
          }
        }
      });

    test('the scales stay f32 in a 16-bit bank: with Bt = 0, y = s · y exactly', () => {
      const s = Float32Array.of(1 + 2 ** -20, 0.3, -7.000001);
      const adapter: PackedAdapter = {
        weights: Float32Array.of(1, 0, 0, 0),
        rank: Int32Array.of(1),
        offsetA: Int32Array.of(0),
        offsetB: Int32Array.of(1),
        scale: Float32Array.of(1),
        inFeatures: Int32Array.of(1),
        outFeatures: Int32Array.of(3),
        outScale: s,
        offsetOutScale: Int32Array.of(0),
      };
      const y0 = Float32Array.of(3, -1.5, 1 / 3);
      const expected = y0.map((v, c) => Math.fround(v * s[c]));
      for (const kernels of [native, referenceLoraKernels])
        for (const dtype of ['bf16', 'f16'] as LoraDtype[]) {
          const bank = bankOf(kernels, [adapter], 1, dtype);
          const y = applied(kernels, bank, Int32Array.of(0), Float32Array.of(2), 1, y0, 3, [
            { module: 0, yOffset: 0, n: 3 },
          ]);
          assertBitwise(y, expected, `${kernels === native ? 'native' : 'reference'} ${dtype}`);
        }
    });

    test('a DoRA row is bitwise the same alone or batched, any thread count (fused q|k|v shapes)', () => {
      const r = rng(84);
      const ns = [576, 192, 192];
      const modules: LoraModuleOutput[] = [
        { module: 0, yOffset: 0, n: 576 },
        { module: 1, yOffset: 576, n: 192 },
        { module: 2, yOffset: 768, n: 192 },
      ];
      const adapters = [
        withOutScale(r, makeAdapter(r, 576, ns, [16, 16, 16]), [true, false, true]),
        makeAdapter(r, 576, ns, [64, 1, 8]),
      ];
      const bank = bankOf(native, adapters, ns.length, 'f32');
      for (const rows of [1, 2, 37]) {
        const x = r.f32(rows * 576);
        const y0 = r.f32(rows * 960);
        const rowSlot = Int32Array.from({ length: rows }, (_, t) => (t === 0 ? 0 : r.int(-1, 1)));
        const alone = eachRowAlone(native, bank, rowSlot, x, 576, y0, 960, modules);
        for (const threads of [1, 2, 3])
          withThreads(threads, () =>
            assertBitwise(
              applied(native, bank, rowSlot, x, 576, y0, 960, modules),
              alone,
              `${rows} rows, ${threads} threads`,
            ),
          );
      }
    });
  });
}

describe('output scales are validated (reference and native alike)', () => {
  const r = rng(85);
  const ns = [12, 5, 7];
  const adapter = makeAdapter(r, 8, ns, [3, 2, 0]);
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    test(`${name}: outScale and offsetOutScale`, () => {
      const bank = kernels.createLoraBank(1, 3);
      const set = (outScale: unknown, offsetOutScale: unknown) =>
        kernels.setLoraSlot(bank, 0, { ...adapter, outScale, offsetOutScale } as PackedAdapter);
      const scales = new Float32Array(20).fill(1);
      set(scales, Int32Array.of(0, 12, -1));
      set(scales, Int32Array.of(-1, -1, -1));
      set(undefined, undefined);
      assert.throws(() => set(scales, undefined), TypeError); // one without the other
      assert.throws(() => set(undefined, Int32Array.of(0, 12, -1)), TypeError);
      assert.throws(() => set([1, 2], Int32Array.of(0, -1, -1)), TypeError);
      assert.throws(() => set(scales, [0, -1, -1]), TypeError);
      assert.throws(() => set(scales, Int32Array.of(0, -1)), RangeError); // one entry per module
      assert.throws(() => set(scales, Int32Array.of(-2, -1, -1)), RangeError);
      assert.throws(() => set(scales, Int32Array.of(9, -1, -1)), /does not fit/); // 9 + 12 > 20
      assert.throws(() => set(scales, Int32Array.of(-1, -1, 0)), /does not target/); // module 2 has rank 0
      const nan = scales.slice();
      nan[3] = Number.NaN;
      assert.throws(() => set(nan, Int32Array.of(0, -1, -1)), /finite/);
    });
  }
});
