/**
 * LoRA kernels (SGMV, BGMV, the slot bank): native under every ISA against the reference, the batch-invariance
 * guarantee (bitwise), what must stay untouched, and argument validation; for f32 and bf16 banks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bf16ToF32, f32ToBf16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank, LoraDtype, LoraOutput, PackedAdapter } from '../../src/kernels/types.ts';
import {
  assertBitwise,
  availableIsas,
  maxAbsDiff,
  type Rng,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';
import { close, randomSegments, tokenSlotsOf } from './lora-fixtures.ts';

type LoraKernels = typeof nativeLoraKernels;

interface ModuleShape {
  k: number;
  n: number;
}

/** One adapter over `shapes`, rank[m] = 0 leaving module m untargeted; values scaled so y stays O(1). */
function makeAdapter(r: Rng, shapes: ModuleShape[], ranks: number[]): PackedAdapter {
  const m = shapes.length;
  const adapter: PackedAdapter = {
    weights: new Float32Array(0),
    rank: Int32Array.from(ranks),
    offsetA: new Int32Array(m),
    offsetB: new Int32Array(m),
    scale: new Float32Array(m),
    inFeatures: new Int32Array(m),
    outFeatures: new Int32Array(m),
  };
  const parts: Float32Array[] = [];
  let offset = 3; // a few leading elements, so offsets are not all zero
  parts.push(r.f32(3));
  shapes.forEach(({ k, n }, i) => {
    const rank = ranks[i];
    adapter.inFeatures[i] = k;
    adapter.outFeatures[i] = n;
    adapter.scale[i] = 0.25 + r.next() * 2;
    if (rank === 0) return;
    adapter.offsetA[i] = offset;
    parts.push(r.f32(rank * k, 1 / Math.sqrt(k)));
    offset += rank * k;
    adapter.offsetB[i] = offset;
    parts.push(r.f32(rank * n, 1 / Math.sqrt(rank)));
    offset += rank * n;
  });
  adapter.weights = new Float32Array(offset);
  let at = 0;
  for (const p of parts) {
    adapter.weights.set(p, at);
    at += p.length;
  }
  return adapter;
}

/** The same adapters in a native and a reference bank. */
function twinBanks(
  native: LoraKernels,
  adapters: PackedAdapter[],
  numSlots: number,
  numModules: number,
  dtype: LoraDtype = 'f32',
) {
  const nb = native.createLoraBank(numSlots, numModules, dtype);
  const rb = referenceLoraKernels.createLoraBank(numSlots, numModules, dtype);
  adapters.forEach((a, s) => {
    native.setLoraSlot(nb, s, a);
    referenceLoraKernels.setLoraSlot(rb, s, a);
  });
  return { nb, rb };
}

const out = (y: Float32Array, yStride: number, yOffset = 0): LoraOutput => ({ y, yStride, yOffset });

const bf16Round = (v: number) => bf16ToF32(f32ToBf16(v));

/** The adapter with every weight rounded to bf16, as a bf16 bank stores it. */
function roundedToBf16(adapter: PackedAdapter): PackedAdapter {
  return { ...adapter, weights: adapter.weights.map(bf16Round) };
}

const DTYPES: LoraDtype[] = ['f32', 'bf16'];

const SHAPES: ModuleShape[] = [
  { k: 37, n: 53 },
  { k: 96, n: 130 },
  { k: 129, n: 17 },
  { k: 200, n: 1 },
];

for (const isa of availableIsas()) {
  describe(`LoRA kernels, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of DTYPES)
      test(`${dtype} bank: SGMV and BGMV match the reference: odd sizes, ranks 1..128, empty and base segments`, () => {
        const r = rng(dtype === 'f32' ? 11 : 21);
        const rankSets = [
          [1, 128, 0, 5],
          [16, 0, 7, 128],
          [127, 3, 64, 0],
          [0, 0, 0, 0],
          [33, 8, 1, 2],
        ];
        const adapters = rankSets.map((ranks) => makeAdapter(r, SHAPES, ranks));
        const { nb, rb } = twinBanks(native, adapters, 6, SHAPES.length, dtype);
        for (let trial = 0; trial < 8; trial++) {
          const module = trial % SHAPES.length;
          const { k, n } = SHAPES[module];
          const rows = r.int(1, 40);
          const x = r.f32(rows * k);
          const y0 = r.f32(rows * n);
          const { segStart, segSlot, numSegments } = randomSegments(r, rows, adapters.length);
          const yn = y0.slice();
          const yr = y0.slice();
          native.loraSgmv(nb, module, x, k, out(yn, n), n, segStart, segSlot, numSegments);
          referenceLoraKernels.loraSgmv(rb, module, x, k, out(yr, n), n, segStart, segSlot, numSegments);
          close(yn, yr, `SGMV trial ${trial}`);
          const tokenSlot = tokenSlotsOf(segStart, segSlot, numSegments);
          const yb = y0.slice();
          const ybr = y0.slice();
          native.loraBgmv(nb, module, x, k, out(yb, n), n, tokenSlot, rows);
          referenceLoraKernels.loraBgmv(rb, module, x, k, out(ybr, n), n, tokenSlot, rows);
          close(yb, ybr, `BGMV trial ${trial}`);
          assertBitwise(yb, yn, `BGMV vs SGMV trial ${trial}`);
        }
      });

    test('rows of the base (-1) and modules a slot does not target stay bitwise untouched', () => {
      const r = rng(12);
      const adapter = makeAdapter(r, SHAPES, [4, 0, 9, 0]);
      const { nb } = twinBanks(native, [adapter], 1, SHAPES.length);
      const { k, n } = SHAPES[0];
      const x = r.f32(5 * k);
      const y0 = r.f32(5 * n);
      const y = y0.slice();
      native.loraSgmv(nb, 0, x, k, out(y, n), n, Int32Array.from([0, 2, 3, 5]), Int32Array.from([-1, 0, -1]), 3);
      assertBitwise(y.subarray(0, 2 * n), y0.subarray(0, 2 * n), 'base rows 0-1');
      assertBitwise(y.subarray(3 * n), y0.subarray(3 * n), 'base rows 3-4');
      assert.notDeepEqual(y.subarray(2 * n, 3 * n), y0.subarray(2 * n, 3 * n));
      const m1 = SHAPES[1];
      const x1 = r.f32(3 * m1.k);
      const y1 = r.f32(3 * m1.n);
      const y1before = y1.slice();
      native.loraBgmv(nb, 1, x1, m1.k, out(y1, m1.n), m1.n, Int32Array.from([0, -1, 0]), 3);
      native.loraSgmv(nb, 1, x1, m1.k, out(y1, m1.n), m1.n, Int32Array.from([0, 3]), Int32Array.from([0]), 1);
      assertBitwise(y1, y1before, 'untargeted module');
    });

    test('yStride/yOffset write only their slice of a wider (fused q|k|v) output', () => {
      const r = rng(13);
      const shapes = [
        { k: 64, n: 40 },
        { k: 64, n: 23 },
        { k: 64, n: 23 },
      ]; // q, k, v of one layer
      const adapters = [makeAdapter(r, shapes, [8, 5, 3]), makeAdapter(r, shapes, [2, 17, 0])];
      const { nb } = twinBanks(native, adapters, 2, 3);
      const rows = 9;
      const stride = 40 + 23 + 23;
      const x = r.f32(rows * 64);
      const fused0 = r.f32(rows * stride);
      const fused = fused0.slice();
      const segStart = Int32Array.from([0, 4, 4, 9]);
      const segSlot = Int32Array.from([1, -1, 0]);
      native.loraSgmv(nb, 1, x, 64, out(fused, stride, 40), 23, segStart, segSlot, 3);
      const separate = new Float32Array(rows * 23);
      for (let t = 0; t < rows; t++) separate.set(fused0.subarray(t * stride + 40, t * stride + 63), t * 23);
      native.loraSgmv(nb, 1, x, 64, out(separate, 23), 23, segStart, segSlot, 3);
      for (let t = 0; t < rows; t++) {
        assertBitwise(
          fused.subarray(t * stride, t * stride + 40),
          fused0.subarray(t * stride, t * stride + 40),
          `q of row ${t}`,
        );
        assertBitwise(
          fused.subarray(t * stride + 40, t * stride + 63),
          separate.subarray(t * 23, t * 23 + 23),
          `k of row ${t}`,
        );
        assertBitwise(
          fused.subarray(t * stride + 63, (t + 1) * stride),
          fused0.subarray(t * stride + 63, (t + 1) * stride),
          `v of row ${t}`,
        );
      }
    });

    for (const dtype of DTYPES)
      test(`${dtype} bank: batch invariance: a row is bitwise the same alone, in any segment, in BGMV, any thread count`, () => {
        const r = rng(dtype === 'f32' ? 14 : 24);
        // Shapes that reach the serial, the row-parallel and the column-split paths.
        const shapes = [
          { k: 576, n: 1536 },
          { k: 75, n: 61 },
        ];
        const adapters = [
          makeAdapter(r, shapes, [64, 16]),
          makeAdapter(r, shapes, [16, 1]),
          makeAdapter(r, shapes, [7, 128]),
        ];
        const { nb } = twinBanks(native, adapters, 3, shapes.length, dtype);
        for (const module of [0, 1]) {
          const { k, n } = shapes[module];
          const rows = 37;
          const x = r.f32(rows * k);
          const y0 = r.f32(rows * n);
          const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
          // Each row alone, from its own buffers.
          const alone = y0.slice();
          withThreads(1, () => {
            for (let t = 0; t < rows; t++) {
              const yt = y0.slice(t * n, (t + 1) * n);
              native.loraBgmv(nb, module, x.slice(t * k, (t + 1) * k), k, out(yt, n), n, slots.subarray(t, t + 1), 1);
              alone.set(yt, t * n);
            }
          });
          for (const threads of [1, 2, 3]) {
            withThreads(threads, () => {
              const yb = y0.slice();
              native.loraBgmv(nb, module, x, k, out(yb, n), n, slots, rows);
              assertBitwise(yb, alone, `module ${module}, BGMV batch, ${threads} threads`);
              // One segment per row, in one call.
              const ys = y0.slice();
              const perRow = Int32Array.from({ length: rows + 1 }, (_, i) => i);
              native.loraSgmv(nb, module, x, k, out(ys, n), n, perRow, slots, rows);
              assertBitwise(ys, alone, `module ${module}, SGMV one row per segment, ${threads} threads`);
              for (const slot of [0, 1, 2]) {
                // One long segment of `slot` vs that slot's rows computed alone.
                const ylong = y0.slice();
                native.loraSgmv(
                  nb,
                  module,
                  x,
                  k,
                  out(ylong, n),
                  n,
                  Int32Array.from([0, 5, rows]),
                  Int32Array.from([-1, slot]),
                  2,
                );
                for (let t = 5; t < rows; t++) {
                  const yt = y0.slice(t * n, (t + 1) * n);
                  native.loraBgmv(nb, module, x.subarray(t * k, (t + 1) * k), k, out(yt, n), n, Int32Array.of(slot), 1);
                  assertBitwise(
                    ylong.subarray(t * n, (t + 1) * n),
                    yt,
                    `module ${module}, slot ${slot}, row ${t} in a segment`,
                  );
                }
              }
            });
          }
        }
      });

    test('a bf16 bank computes bitwise what an f32 bank holding the bf16-rounded weights does', () => {
      const r = rng(25);
      const shapes = [
        { k: 576, n: 1536 },
        { k: 37, n: 53 },
      ];
      const adapters = [
        makeAdapter(r, shapes, [16, 5]),
        makeAdapter(r, shapes, [3, 33]),
        makeAdapter(r, shapes, [1, 0]),
      ];
      const bf16 = native.createLoraBank(3, shapes.length, 'bf16');
      const f32 = native.createLoraBank(3, shapes.length, 'f32');
      adapters.forEach((a, s) => {
        native.setLoraSlot(bf16, s, a);
        native.setLoraSlot(f32, s, roundedToBf16(a));
      });
      for (const [module, { k, n }] of shapes.entries()) {
        for (const rows of [1, 2, 7, 19]) {
          const x = r.f32(rows * k);
          const y0 = r.f32(rows * n);
          const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
          const yb = y0.slice();
          const yf = y0.slice();
          native.loraBgmv(bf16, module, x, k, out(yb, n), n, slots, rows);
          native.loraBgmv(f32, module, x, k, out(yf, n), n, slots, rows);
          assertBitwise(yb, yf, `module ${module}, ${rows} rows`);
        }
      }
    });

    test('a bf16 bank rounds to nearest even, keeps subnormals, and overflows to infinity like f32ToBf16', () => {
      // K = 1, A = 1, x = 1, scale = 1, y = 0: y[n] = Bt[0, n] exactly as the bank stores it.
      const bits = [0x3f808000, 0x3f818000, 0x3f808001, 0xbf7fffff, 0x00012345, 0x80012345, 0x7f7fffff, 0x42c80000];
      const bt = new Float32Array(new Uint32Array(bits).buffer);
      const n = bt.length;
      const adapter: PackedAdapter = {
        weights: Float32Array.of(1, ...bt),
        rank: Int32Array.of(1),
        offsetA: Int32Array.of(0),
        offsetB: Int32Array.of(1),
        scale: Float32Array.of(1),
        inFeatures: Int32Array.of(1),
        outFeatures: Int32Array.of(n),
      };
      const expected = bt.map(bf16Round);
      for (const kernels of [native, referenceLoraKernels]) {
        const bank = kernels.createLoraBank(1, 1, 'bf16');
        kernels.setLoraSlot(bank, 0, adapter);
        const y = new Float32Array(n);
        kernels.loraBgmv(bank, 0, Float32Array.of(1), 1, out(y, n), n, Int32Array.of(0), 1);
        assertBitwise(y, expected, kernels === native ? 'native' : 'reference');
      }
      assert.equal(expected[6], Number.POSITIVE_INFINITY);
      assert.notEqual(expected[4], 0);
    });

    test('bf16 and f32 banks differ only by the bf16 rounding of the weights', () => {
      const r = rng(26);
      const shapes = [{ k: 200, n: 130 }];
      const adapters = [makeAdapter(r, shapes, [16]), makeAdapter(r, shapes, [64])];
      const { nb: f32 } = twinBanks(native, adapters, 2, 1, 'f32');
      const { nb: bf16 } = twinBanks(native, adapters, 2, 1, 'bf16');
      const rows = 12;
      const x = r.f32(rows * 200);
      const slots = Int32Array.from({ length: rows }, (_, t) => t % 2);
      const yf = new Float32Array(rows * 130);
      const yb = new Float32Array(rows * 130);
      native.loraBgmv(f32, 0, x, 200, out(yf, 130), 130, slots, rows);
      native.loraBgmv(bf16, 0, x, 200, out(yb, 130), 130, slots, rows);
      // Each weight moves by ≤ 2^-9 relative; the products add up to O(1) outputs, so a few 1e-2 at most.
      const diff = maxAbsDiff(yb, yf);
      assert.ok(diff > 0, 'bf16 rounding changes the result');
      assert.ok(diff < 3e-2, `bf16 vs f32 max |diff| ${diff}`);
    });

    test('many adapters: 100 slots with their own ranks and scales, decode batch of 64', () => {
      const r = rng(15);
      const shapes = [{ k: 96, n: 80 }];
      const adapters = Array.from({ length: 100 }, () => makeAdapter(r, shapes, [r.int(1, 128)]));
      const { nb, rb } = twinBanks(native, adapters, 100, 1);
      const x = r.f32(64 * 96);
      const y0 = r.f32(64 * 80);
      const slots = Int32Array.from({ length: 64 }, () => r.int(-1, 99));
      const yn = y0.slice();
      const yr = y0.slice();
      native.loraBgmv(nb, 0, x, 96, out(yn, 80), 80, slots, 64);
      referenceLoraKernels.loraBgmv(rb, 0, x, 96, out(yr, 80), 80, slots, 64);
      close(yn, yr, 'BGMV over 100 adapters');
    });

    test('one token, no segments, no tokens, and all-empty segments', () => {
      const r = rng(16);
      const { k, n } = SHAPES[1];
      const adapter = makeAdapter(r, SHAPES, [3, 11, 2, 1]);
      const { nb, rb } = twinBanks(native, [adapter], 1, SHAPES.length);
      const x = r.f32(k);
      const y0 = r.f32(n);
      const yn = y0.slice();
      const yr = y0.slice();
      native.loraBgmv(nb, 1, x, k, out(yn, n), n, Int32Array.of(0), 1);
      referenceLoraKernels.loraBgmv(rb, 1, x, k, out(yr, n), n, Int32Array.of(0), 1);
      close(yn, yr, 'one token');
      const y = y0.slice();
      native.loraSgmv(nb, 1, x, k, out(y, n), n, new Int32Array(0), new Int32Array(0), 0);
      native.loraBgmv(nb, 1, x, k, out(y, n), n, new Int32Array(0), 0);
      native.loraSgmv(nb, 1, x, k, out(y, n), n, Int32Array.from([0, 0, 0]), Int32Array.from([0, 0]), 2);
      assertBitwise(y, y0, 'nothing to do');
    });

    test('the bank holds its own copy; replacing a slot takes effect; a cleared slot is refused', () => {
      const r = rng(17);
      const { k, n } = SHAPES[0];
      const first = makeAdapter(r, SHAPES, [6, 0, 0, 0]);
      const second = makeAdapter(r, SHAPES, [9, 0, 0, 0]);
      const bank = native.createLoraBank(2, SHAPES.length);
      const ref = referenceLoraKernels.createLoraBank(2, SHAPES.length);
      native.setLoraSlot(bank, 1, first);
      referenceLoraKernels.setLoraSlot(ref, 1, first);
      first.weights.fill(Number.NaN); // the caller may reuse or drop its arrays
      const x = r.f32(2 * k);
      const y0 = r.f32(2 * n);
      const run = (b: LoraBank, kernels: LoraKernels) => {
        const y = y0.slice();
        kernels.loraBgmv(b, 0, x, k, out(y, n), n, Int32Array.of(1, 1), 2);
        return y;
      };
      close(run(bank, native), run(ref, referenceLoraKernels), 'after the source was overwritten');
      native.setLoraSlot(bank, 1, second);
      referenceLoraKernels.setLoraSlot(ref, 1, second);
      close(run(bank, native), run(ref, referenceLoraKernels), 'after replacement');
      for (const [kernels, b] of [
        [native, bank],
        [referenceLoraKernels, ref],
      ] as const) {
        kernels.clearLoraSlot(b, 1);
        assert.throws(() => run(b, kernels), /slot 1 is empty/);
        assert.throws(() => run(b, kernels), RangeError);
        kernels.setLoraSlot(b, 1, second);
        run(b, kernels);
      }
      assert.throws(
        () => native.loraBgmv(bank, 0, x, k, out(y0.slice(), n), n, Int32Array.of(0), 1),
        /slot 0 is empty/,
      );
    });
  });
}

describe('LoRA kernels reject bad arguments (reference and native alike)', () => {
  const r = rng(18);
  const shapes = [
    { k: 8, n: 12 },
    { k: 8, n: 5 },
  ];
  const adapter = makeAdapter(r, shapes, [3, 2]);
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    const bank = kernels.createLoraBank(2, 2);
    kernels.setLoraSlot(bank, 0, adapter);
    const x = r.f32(4 * 8);
    const y = r.f32(4 * 12);
    const seg = (
      start: number[],
      slot: number[],
      yy: Float32Array = y,
      xx: Float32Array = x,
      k = 8,
      n = 12,
      module = 0,
      stride = n,
      offset = 0,
    ) =>
      kernels.loraSgmv(
        bank,
        module,
        xx,
        k,
        out(yy, stride, offset),
        n,
        Int32Array.from(start),
        Int32Array.from(slot),
        slot.length,
      );
    const tok = (slots: number[], yy: Float32Array = y, xx: Float32Array = x) =>
      kernels.loraBgmv(bank, 0, xx, 8, out(yy, 12), 12, Int32Array.from(slots), slots.length);
    const withField = (field: keyof PackedAdapter, value: unknown) => ({ ...adapter, [field]: value }) as PackedAdapter;

    test(`${name}: banks store f32 unless asked for bf16 or f16; other dtypes are refused`, () => {
      assert.equal(kernels.createLoraBank(2, 2).dtype, 'f32');
      assert.equal(kernels.createLoraBank(2, 2, 'bf16').dtype, 'bf16');
      assert.equal(kernels.createLoraBank(2, 2, 'f16').dtype, 'f16');
      assert.throws(() => kernels.createLoraBank(2, 2, 'fp8' as LoraDtype), /'f32', 'bf16' or 'f16'/);
      assert.throws(() => kernels.createLoraBank(2, 2, 'fp8' as LoraDtype), RangeError);
      assert.throws(() => kernels.createLoraBank(2, 2, 16 as unknown as LoraDtype), TypeError);
      // The default bank keeps every f32 bit: y = 1 · A · Bt with A = 1 returns Bt unrounded.
      const plain = kernels.createLoraBank(1, 1);
      const bt = Float32Array.of(1 + 2 ** -20, -3.0000002);
      kernels.setLoraSlot(plain, 0, {
        weights: Float32Array.of(1, ...bt),
        rank: Int32Array.of(1),
        offsetA: Int32Array.of(0),
        offsetB: Int32Array.of(1),
        scale: Float32Array.of(1),
        inFeatures: Int32Array.of(1),
        outFeatures: Int32Array.of(2),
      });
      const yy = new Float32Array(2);
      kernels.loraBgmv(plain, 0, Float32Array.of(1), 1, out(yy, 2), 2, Int32Array.of(0), 1);
      assertBitwise(yy, bt, 'default bank');
    });

    test(`${name}: bank and slot setup`, () => {
      assert.throws(() => kernels.createLoraBank(0, 2), RangeError);
      assert.throws(() => kernels.createLoraBank(2.5, 2), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 2, adapter), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, -1, adapter), RangeError);
      assert.throws(() => kernels.clearLoraSlot(bank, 7), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(3))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(3, 1025))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(-1, 2))), RangeError);
      assert.throws(
        () => kernels.setLoraSlot(bank, 1, withField('offsetB', Int32Array.of(adapter.weights.length, 0))),
        RangeError,
      );
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('offsetA', Int32Array.of(-4, 0))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('inFeatures', Int32Array.of(0, 8))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('scale', Float32Array.of(Number.NaN, 1))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('weights', new Float64Array(100))), TypeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', [3, 2])), TypeError);
      const other = kernels === nativeLoraKernels ? referenceLoraKernels : nativeLoraKernels;
      assert.throws(() => kernels.setLoraSlot(other.createLoraBank(2, 2), 0, adapter), TypeError);
      // A rejected setLoraSlot leaves the slot as it was.
      assert.throws(() => tok([1]), /empty/);
    });

    test(`${name}: kernel arguments`, () => {
      assert.throws(() => seg([0, 4], [0], y, x, 8, 12, 2), RangeError); // module out of range
      assert.throws(() => seg([0, 4], [0], y, x, 9), RangeError); // K differs from the slot's
      assert.throws(() => seg([0, 4], [0], y, x, 8, 5), RangeError); // N differs from the slot's (module 0)
      assert.throws(() => seg([0, 4], [2]), RangeError); // slot beyond the bank
      assert.throws(() => seg([0, 4], [-2]), RangeError);
      assert.throws(() => seg([0, 3, 2], [0, 0]), RangeError); // decreasing
      assert.throws(() => seg([-1, 2], [0]), RangeError);
      assert.throws(() => seg([0, 5], [0]), RangeError); // past x and y
      assert.throws(() => seg([0, 4], [0], y.subarray(1)), RangeError); // y too short
      assert.throws(() => seg([0, 4], [0], y, x, 8, 12, 0, 12, 1), RangeError); // yOffset + n > yStride
      assert.throws(() => seg([0, 4], [0], y, x, 8, 12, 0, 12.5), RangeError);
      assert.throws(() => seg([0, 4], [0], new Float64Array(48) as unknown as Float32Array), TypeError);
      assert.throws(
        () => kernels.loraSgmv(bank, 0, x, 8, out(y, 12), 12, Int32Array.of(0, 4), Int32Array.of(0), 2),
        RangeError,
      );
      assert.throws(
        () => kernels.loraSgmv(bank, 0, x, 8, out(y, 12), 12, [0, 4] as unknown as Int32Array, Int32Array.of(0), 1),
        TypeError,
      );
      assert.throws(() => tok([0, 0, 0, 0, 0]), RangeError); // 5 tokens, x holds 4
      assert.throws(() => tok([0, 3]), RangeError);
      assert.throws(() => kernels.loraBgmv(bank, 0, x, 8, out(y, 12), 12, Int32Array.of(0), 2), RangeError);
      const shared = new Float32Array(200);
      assert.throws(() => tok([0, 0], shared.subarray(10, 40), shared.subarray(0, 16)), TypeError); // x overlaps y
      tok([0, 0], shared.subarray(16, 40), shared.subarray(0, 16)); // adjacent is fine
    });
  }
});
