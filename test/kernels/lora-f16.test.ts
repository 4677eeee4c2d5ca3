/**
 * f16 LoRA banks: setLoraSlot rounds A and Bt to f16 as f32ToF16 does (nearest even, subnormals, overflow to
 * infinity), and every kernel then computes bitwise what an f32 bank holding the rounded weights does, under
 * every ISA (AVX2 and AVX-512 widen with vcvtph2ps, scalar with bit manipulation); against the reference.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { f16ToF32, f32ToF16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank, LoraModuleOutput } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, maxAbsDiff, restoreDefaults, rng } from './implementations.ts';
import { bankOf, close, type LoraKernels, makeAdapter, ODD_LAYOUT, throughOneRow } from './lora-fixtures.ts';

const f16Round = (v: number) => f16ToF32(f32ToF16(v));

const NS = [53, 130, 1536];

for (const isa of availableIsas()) {
  describe(`f16 LoRA banks, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    test('setLoraSlot rounds like f32ToF16: nearest even, subnormals kept, overflow to infinity', () => {
      const ulp = 2 ** -10;
      const special = [
        1 + ulp / 2, // a tie: to even (1)
        1 + (3 * ulp) / 2, // a tie: to even (1 + 2 ulp)
        1 + ulp / 2 + 2 ** -20, // past the tie: up
        65504, // the largest f16
        65519, // rounds down to 65504
        65520, // rounds to infinity
        -1e6,
        2 ** -24, // the smallest subnormal
        2 ** -25, // a tie with 0: to even (0)
        3 * 2 ** -26, // past the tie: 2^-24
        6.1e-5, // just below the smallest normal
        -3.3e-6,
        1e-30, // to zero
        Number.POSITIVE_INFINITY,
        0.1,
        -2.7182817,
      ];
      // And random bit patterns over the whole f32 range (NaNs left out: their payloads are not compared).
      const r = rng(71);
      const bits = new Uint32Array(4000);
      for (let i = 0; i < bits.length; i++) {
        let b: number;
        do b = Math.floor(r.next() * 2 ** 32) >>> 0;
        while ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0);
        bits[i] = b;
      }
      const values = Float32Array.from([...special, ...new Float32Array(bits.buffer)]);
      const expected = values.map((v) => f16Round(v) + 0); // + 0: y starts at +0, so -0 comes back +0
      for (const kernels of [native, referenceLoraKernels])
        assertBitwise(throughOneRow(kernels, 'f16', values), expected, kernels === native ? 'native' : 'reference');
      assert.equal(expected[5], Number.POSITIVE_INFINITY);
      assert.equal(expected[7], 2 ** -24);
      assert.equal(expected[8], 0);
    });

    test('an f16 bank computes bitwise what an f32 bank holding the f16-rounded weights does', () => {
      const r = rng(72);
      const adapters = [
        makeAdapter(r, 576, NS, [16, 5, 64]),
        makeAdapter(r, 576, NS, [3, 128, 0]),
        makeAdapter(r, 576, NS, [1, 0, 7]),
      ];
      const f16 = bankOf(native, adapters, NS.length, 'f16');
      const f32 = bankOf(
        native,
        adapters.map((a) => ({ ...a, weights: a.weights.map(f16Round) })),
        NS.length,
        'f32',
      );
      const modules: LoraModuleOutput[] = [
        { module: 0, yOffset: 0, n: 53 },
        { module: 1, yOffset: 55, n: 130 },
        { module: 2, yOffset: 185, n: 1536 },
      ];
      const yStride = 1721;
      const layout = native.createLoraRows();
      for (const rows of [1, 2, 7, 19]) {
        const x = r.f32(rows * 576);
        const y0 = r.f32(rows * yStride);
        const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
        native.setLoraRows(layout, slots, rows);
        const yh = y0.slice();
        const yf = y0.slice();
        native.applyAdapters(f16, layout, x, 576, { y: yh, yStride, modules });
        native.applyAdapters(f32, layout, x, 576, { y: yf, yStride, modules });
        assertBitwise(yh, yf, `applyAdapters, ${rows} rows`);
      }
    });

    test('an f16 bank matches the reference on random layouts; f16 and f32 banks differ only by rounding', () => {
      const r = rng(73);
      const { k: K, ns, modules, yStride } = ODD_LAYOUT;
      const adapters = ODD_LAYOUT.ranks.map((ranks) => makeAdapter(r, K, ns, ranks));
      const nb = bankOf(native, adapters, ns.length, 'f16');
      const rb = bankOf(referenceLoraKernels, adapters, ns.length, 'f16');
      const nf = bankOf(native, adapters, ns.length, 'f32');
      for (const rows of [1, 9, 33]) {
        const x = r.f32(rows * K);
        const y0 = r.f32(rows * yStride);
        const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
        const run = (kernels: LoraKernels, bank: LoraBank) => {
          const layout = kernels.createLoraRows();
          kernels.setLoraRows(layout, slots, rows);
          const y = y0.slice();
          kernels.applyAdapters(bank, layout, x, K, { y, yStride, modules });
          return y;
        };
        const yn = run(native, nb);
        close(yn, run(referenceLoraKernels, rb), `${rows} rows`);
        // Each weight moves by ≤ 2^-11 relative: far less than bf16's 2^-8.
        const diff = maxAbsDiff(yn, run(native, nf));
        assert.ok(diff < 5e-3, `f16 vs f32 max |diff| ${diff}`);
      }
    });
  });
}
