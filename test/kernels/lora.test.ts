/**
 * The LoRA slot bank and applyAdapters, one module per call and at offsets of wider rows: native under every
 * ISA against the reference (each module with its own K), the batch-invariance guarantee (bitwise: a row
 * alone, in a run of its slot, interleaved with other slots, any thread count), what must stay untouched,
 * bf16 storage, the bank's own copies, and argument validation (reference and native alike).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import {
  assertBitwise,
  availableIsas,
  maxAbsDiff,
  type Rng,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';
import {
  applied,
  close,
  type LoraKernels,
  makeAdapter as makeUniformAdapter,
  randomSegments,
  throughOneRow,
  tokenSlotsOf,
} from './lora-fixtures.ts';

interface ModuleShape {
  k: number;
  n: number;
}

/** One adapter over `shapes` (each module its own K), rank[m] = 0 leaving m untargeted; y stays O(1). */
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
  const parts: Float32Array[] = [r.f32(3)]; // a few leading elements, so offsets are not all zero
  let offset = 3;
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

function bankOf(
  kernels: LoraKernels,
  adapters: PackedAdapter[],
  numSlots: number,
  numModules: number,
  dtype: LoraDtype = 'f32',
) {
  const bank = kernels.createLoraBank(numSlots, numModules, dtype);
  for (const [s, a] of adapters.entries()) kernels.setLoraSlot(bank, s, a);
  return bank;
}

/** The same adapters in a native and a reference bank. */
function twinBanks(adapters: PackedAdapter[], numSlots: number, numModules: number, dtype: LoraDtype = 'f32') {
  return {
    nb: bankOf(nativeLoraKernels, adapters, numSlots, numModules, dtype),
    rb: bankOf(referenceLoraKernels, adapters, numSlots, numModules, dtype),
  };
}

/** One module over rows of its own N (y0 [rows, n]). */
const appliedOne = (
  kernels: LoraKernels,
  bank: LoraBank,
  module: number,
  rowSlot: Int32Array,
  x: Float32Array,
  { k, n }: ModuleShape,
  y0: Float32Array,
) => applied(kernels, bank, rowSlot, x, k, y0, n, [{ module, yOffset: 0, n }]);

/** Rows reordered by `order` (row i of the result is row order[i] of `rows`, of `width` elements each). */
function permuteRows(rows: Float32Array, width: number, order: number[]): Float32Array {
  const out = new Float32Array(rows.length);
  order.forEach((from, i) => {
    out.set(rows.subarray(from * width, (from + 1) * width), i * width);
  });
  return out;
}

const bf16Round = (v: number) => bf16ToF32(f32ToBf16(v));

const DTYPES: LoraDtype[] = ['f32', 'bf16'];

const SHAPES: ModuleShape[] = [
  { k: 37, n: 53 },
  { k: 96, n: 130 },
  { k: 129, n: 17 },
  { k: 200, n: 1 },
];

for (const isa of availableIsas()) {
  describe(`LoRA slot bank and applyAdapters, one module per call, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of DTYPES)
      test(`${dtype} bank: each module with its own K matches the reference: odd sizes, ranks 1..128, runs of one slot, base rows; interleaving the rows changes no bit`, () => {
        const r = rng(dtype === 'f32' ? 11 : 21);
        const rankSets = [
          [1, 128, 0, 5],
          [16, 0, 7, 128],
          [127, 3, 64, 0],
          [0, 0, 0, 0],
          [33, 8, 1, 2],
        ];
        const adapters = rankSets.map((ranks) => makeAdapter(r, SHAPES, ranks));
        const { nb, rb } = twinBanks(adapters, 6, SHAPES.length, dtype);
        for (let trial = 0; trial < 8; trial++) {
          const module = trial % SHAPES.length;
          const shape = SHAPES[module];
          const rows = trial === 0 ? 1 : r.int(1, 40);
          const x = r.f32(rows * shape.k);
          const y0 = r.f32(rows * shape.n);
          // Runs of one slot (some empty), as a prefill chunk's rows are.
          const { segStart, segSlot, numSegments } = randomSegments(r, rows, adapters.length);
          const rowSlot = tokenSlotsOf(segStart, segSlot, numSegments);
          const yn = appliedOne(native, nb, module, rowSlot, x, shape, y0);
          close(yn, appliedOne(referenceLoraKernels, rb, module, rowSlot, x, shape, y0), `trial ${trial}`);
          // The same rows shuffled: each row's bits do not depend on where its slot's other rows are.
          const order = Array.from({ length: rows }, (_, i) => i).sort(() => r.next() - 0.5);
          const shuffled = appliedOne(
            native,
            nb,
            module,
            Int32Array.from(order, (t) => rowSlot[t]),
            permuteRows(x, shape.k, order),
            shape,
            permuteRows(y0, shape.n, order),
          );
          assertBitwise(shuffled, permuteRows(yn, shape.n, order), `trial ${trial}, rows interleaved`);
        }
      });

    test('base rows, modules a slot does not target and the gaps between modules stay bitwise untouched', () => {
      const r = rng(33);
      const K = 67;
      const NS = [53, 21, 21, 130, 1];
      const adapter = makeUniformAdapter(r, K, NS, [6, 0, 3, 0, 2]);
      const { nb } = twinBanks([adapter], 1, NS.length);
      const modules = [
        { module: 0, yOffset: 2, n: 53 },
        { module: 1, yOffset: 60, n: 21 }, // rank 0 in slot 0
        { module: 2, yOffset: 81, n: 21 },
      ];
      const yStride = 105;
      const rows = 5;
      const x = r.f32(rows * K);
      const y0 = r.f32(rows * yStride);
      const y = applied(native, nb, Int32Array.of(-1, -1, 0, -1, -1), x, K, y0, yStride, modules);
      const row = (buffer: Float32Array, t: number, from: number, to: number) =>
        buffer.subarray(t * yStride + from, t * yStride + to);
      for (const t of [0, 1, 3, 4]) assertBitwise(row(y, t, 0, yStride), row(y0, t, 0, yStride), `base row ${t}`);
      for (const [from, to] of [
        [0, 2],
        [55, 60],
        [60, 81],
        [102, 105],
      ])
        assertBitwise(row(y, 2, from, to), row(y0, 2, from, to), `row 2, columns ${from}..${to - 1}`);
      assert.notDeepEqual(row(y, 2, 2, 55), row(y0, 2, 2, 55));
      // Module 2 at offset 81 of the wide rows is bitwise module 2 into rows of its own.
      const alone = new Float32Array(rows * 21);
      for (let t = 0; t < rows; t++) alone.set(row(y0, t, 81, 102), t * 21);
      const own = appliedOne(native, nb, 2, Int32Array.of(-1, -1, 0, -1, -1), x, { k: K, n: 21 }, alone);
      assertBitwise(row(y, 2, 81, 102), own.subarray(2 * 21, 3 * 21), 'module 2 at an offset vs alone');
      // A slot targeting none of the call's modules leaves everything as it was.
      const y1 = r.f32(3 * 21);
      const untouched = applied(native, nb, Int32Array.of(0, -1, 0), x, K, y1, 21, [{ module: 1, yOffset: 0, n: 21 }]);
      assertBitwise(untouched, y1, 'untargeted module');
    });

    for (const dtype of DTYPES)
      test(`${dtype} bank: batch invariance: a row is bitwise the same alone, in a run of its slot, interleaved, any thread count`, () => {
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
        const nb = bankOf(native, adapters, 3, shapes.length, dtype);
        for (const [module, shape] of shapes.entries()) {
          const { k, n } = shape;
          const rows = 37;
          const x = r.f32(rows * k);
          const y0 = r.f32(rows * n);
          const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
          const rowOf = (t: number, slot: number) =>
            appliedOne(
              native,
              nb,
              module,
              Int32Array.of(slot),
              x.slice(t * k, (t + 1) * k),
              shape,
              y0.slice(t * n, (t + 1) * n),
            );
          const alone = new Float32Array(rows * n);
          withThreads(1, () => {
            for (let t = 0; t < rows; t++) alone.set(rowOf(t, slots[t]), t * n);
          });
          for (const threads of [1, 2, 3]) {
            withThreads(threads, () => {
              const batch = appliedOne(native, nb, module, slots, x, shape, y0);
              assertBitwise(batch, alone, `module ${module}, interleaved batch, ${threads} threads`);
              for (const slot of [0, 1, 2]) {
                // Five base rows, then one long run of `slot` (a prefill chunk).
                const run = Int32Array.from({ length: rows }, (_, t) => (t < 5 ? -1 : slot));
                const long = appliedOne(native, nb, module, run, x, shape, y0);
                for (let t = 5; t < rows; t++)
                  assertBitwise(
                    long.subarray(t * n, (t + 1) * n),
                    rowOf(t, slot),
                    `module ${module}, slot ${slot}, row ${t} in a run`,
                  );
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
      const bf16 = bankOf(native, adapters, 3, shapes.length, 'bf16');
      const f32 = bankOf(
        native,
        adapters.map((a) => ({ ...a, weights: a.weights.map(bf16Round) })),
        3,
        shapes.length,
      );
      for (const [module, shape] of shapes.entries()) {
        for (const rows of [1, 2, 7, 19]) {
          const x = r.f32(rows * shape.k);
          const y0 = r.f32(rows * shape.n);
          const slots = Int32Array.from({ length: rows }, () => r.int(-1, 2));
          assertBitwise(
            appliedOne(native, bf16, module, slots, x, shape, y0),
            appliedOne(native, f32, module, slots, x, shape, y0),
            `module ${module}, ${rows} rows`,
          );
        }
      }
    });

    for (const dtype of ['bf16', 'f16'] as const)
      test(`${dtype} bank on runs of many rows (weights widened once per tile) is bitwise the f32 bank of the rounded weights, at the widening limits (K 4096 / 4097, rank 64 / 65)`, () => {
        const r = rng(dtype === 'bf16' ? 26 : 27);
        const round = dtype === 'bf16' ? bf16Round : (v: number) => f16ToF32(f32ToF16(v));
        const shapes = [
          { k: 4096, n: 130 },
          { k: 4097, n: 67 },
        ];
        const adapters = [makeAdapter(r, shapes, [64, 65]), makeAdapter(r, shapes, [65, 64])];
        const narrow = bankOf(native, adapters, 2, shapes.length, dtype);
        const f32 = bankOf(
          native,
          adapters.map((a) => ({ ...a, weights: a.weights.map(round) })),
          2,
          shapes.length,
        );
        // One thread: blocks of up to 16 rows of a run; 8 rows of a slot stay one block (widening starts at 9).
        withThreads(1, () => {
          for (const [module, shape] of shapes.entries()) {
            for (const rows of [10, 11, 40, 41]) {
              const x = r.f32(rows * shape.k);
              const y0 = r.f32(rows * shape.n);
              // Two base rows, then one run of slot 0 (ranks 64, 65) or 1 (65, 64), as a prefill chunk.
              const slots = Int32Array.from({ length: rows }, (_, t) => (t < 2 ? -1 : rows % 2));
              assertBitwise(
                appliedOne(native, narrow, module, slots, x, shape, y0),
                appliedOne(native, f32, module, slots, x, shape, y0),
                `module ${module}, ${rows} rows`,
              );
            }
          }
        });
      });

    test('a bf16 bank rounds to nearest even, keeps subnormals, and overflows to infinity like f32ToBf16', () => {
      const bits = [0x3f808000, 0x3f818000, 0x3f808001, 0xbf7fffff, 0x00012345, 0x80012345, 0x7f7fffff, 0x42c80000];
      const bt = new Float32Array(new Uint32Array(bits).buffer);
      const expected = bt.map(bf16Round);
      for (const kernels of [native, referenceLoraKernels])
        assertBitwise(throughOneRow(kernels, 'bf16', bt), expected, kernels === native ? 'native' : 'reference');
      assert.equal(expected[6], Number.POSITIVE_INFINITY);
      assert.notEqual(expected[4], 0);
    });

    test('bf16 and f32 banks differ only by the bf16 rounding of the weights', () => {
      const r = rng(26);
      const shape = { k: 200, n: 130 };
      const adapters = [makeAdapter(r, [shape], [16]), makeAdapter(r, [shape], [64])];
      const f32 = bankOf(native, adapters, 2, 1, 'f32');
      const bf16 = bankOf(native, adapters, 2, 1, 'bf16');
      const rows = 12;
      const x = r.f32(rows * 200);
      const slots = Int32Array.from({ length: rows }, (_, t) => t % 2);
      const y0 = new Float32Array(rows * 130);
      // Each weight moves by ≤ 2^-9 relative; the products add up to O(1) outputs, so a few 1e-2 at most.
      const diff = maxAbsDiff(
        appliedOne(native, bf16, 0, slots, x, shape, y0),
        appliedOne(native, f32, 0, slots, x, shape, y0),
      );
      assert.ok(diff > 0, 'bf16 rounding changes the result');
      assert.ok(diff < 3e-2, `bf16 vs f32 max |diff| ${diff}`);
    });

    test('the bank holds its own copy; replacing a slot takes effect; a cleared slot is refused', () => {
      const r = rng(17);
      const shape = SHAPES[0];
      const first = makeAdapter(r, SHAPES, [6, 0, 0, 0]);
      const second = makeAdapter(r, SHAPES, [9, 0, 0, 0]);
      const bank = native.createLoraBank(2, SHAPES.length);
      const ref = referenceLoraKernels.createLoraBank(2, SHAPES.length);
      native.setLoraSlot(bank, 1, first);
      referenceLoraKernels.setLoraSlot(ref, 1, first);
      first.weights.fill(Number.NaN); // the caller may reuse or drop its arrays
      const x = r.f32(2 * shape.k);
      const y0 = r.f32(2 * shape.n);
      const run = (b: LoraBank, kernels: LoraKernels) => appliedOne(kernels, b, 0, Int32Array.of(1, 1), x, shape, y0);
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
      assert.throws(() => appliedOne(native, bank, 0, Int32Array.of(0), x, shape, y0), /slot 0 is empty/);
    });
  });
}

describe('the LoRA bank and applyAdapters reject bad arguments (reference and native alike)', () => {
  const r = rng(18);
  const shapes = [
    { k: 8, n: 12 },
    { k: 8, n: 5 },
    { k: 8, n: 7 },
  ];
  const adapter = makeAdapter(r, shapes, [3, 2, 0]);
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    const other = kernels === nativeLoraKernels ? referenceLoraKernels : nativeLoraKernels;
    const bank = kernels.createLoraBank(2, 3);
    kernels.setLoraSlot(bank, 0, adapter);
    const x = r.f32(4 * 8);
    const y = r.f32(4 * 20);
    const good = [
      { module: 0, yOffset: 0, n: 12 },
      { module: 1, yOffset: 12, n: 5 },
    ];
    /** applyAdapters over rows of `slots` (default: 4 rows of slot 0), out.modules as given. */
    const apply = (
      modules: unknown,
      {
        slots = [0, 0, 0, 0],
        yStride = 20,
        yy = y,
        xx = x,
        k = 8,
      }: Partial<{ slots: number[]; yStride: number; yy: Float32Array; xx: Float32Array; k: number }> = {},
    ) => {
      const rows = kernels.createLoraRows();
      kernels.setLoraRows(rows, Int32Array.from(slots), slots.length);
      kernels.applyAdapters(bank, rows, xx, k, { y: yy, yStride, modules: modules as LoraModuleOutput[] });
    };
    const withField = (field: keyof PackedAdapter, value: unknown) => ({ ...adapter, [field]: value }) as PackedAdapter;

    test(`${name}: banks store f32 unless asked for bf16, f16 or int8; other dtypes are refused`, () => {
      assert.equal(kernels.createLoraBank(2, 2).dtype, 'f32');
      assert.equal(kernels.createLoraBank(2, 2, 'bf16').dtype, 'bf16');
      assert.equal(kernels.createLoraBank(2, 2, 'f16').dtype, 'f16');
      assert.equal(kernels.createLoraBank(2, 2, 'int8').dtype, 'int8');
      assert.throws(() => kernels.createLoraBank(2, 2, 'fp8' as LoraDtype), /'f32', 'bf16', 'f16' or 'int8'/);
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
      const yy = appliedOne(
        kernels,
        plain,
        0,
        Int32Array.of(0),
        Float32Array.of(1),
        { k: 1, n: 2 },
        new Float32Array(2),
      );
      assertBitwise(yy, bt, 'default bank');
    });

    test(`${name}: bank and slot setup`, () => {
      assert.throws(() => kernels.createLoraBank(0, 2), RangeError);
      assert.throws(() => kernels.createLoraBank(2.5, 2), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 2, adapter), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, -1, adapter), RangeError);
      assert.throws(() => kernels.clearLoraSlot(bank, 7), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(3))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(3, 1025, 0))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', Int32Array.of(-1, 2, 0))), RangeError);
      assert.throws(
        () => kernels.setLoraSlot(bank, 1, withField('offsetB', Int32Array.of(adapter.weights.length, 0, 0))),
        RangeError,
      );
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('offsetA', Int32Array.of(-4, 0, 0))), RangeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('inFeatures', Int32Array.of(0, 8, 8))), RangeError);
      assert.throws(
        () => kernels.setLoraSlot(bank, 1, withField('scale', Float32Array.of(Number.NaN, 1, 1))),
        RangeError,
      );
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('weights', new Float64Array(100))), TypeError);
      assert.throws(() => kernels.setLoraSlot(bank, 1, withField('rank', [3, 2, 0])), TypeError);
      assert.throws(() => kernels.setLoraSlot(other.createLoraBank(2, 3), 0, adapter), TypeError);
      // A rejected setLoraSlot leaves the slot as it was.
      assert.throws(() => apply(good, { slots: [1] }), /empty/);
    });

    test(`${name}: module lists`, () => {
      apply(good);
      apply([good[1], good[0]]); // any order
      apply([...good, { module: 2, yOffset: 17, n: 3 }]); // slot 0 does not target module 2: nothing to check
      assert.throws(() => apply([good[0], { module: 1, yOffset: 11, n: 5 }]), /overlap/);
      assert.throws(() => apply([good[0], { module: 1, yOffset: 11, n: 5 }]), RangeError);
      assert.throws(() => apply([good[0], { ...good[0] }]), RangeError); // the same columns twice
      assert.throws(() => apply([{ module: 3, yOffset: 0, n: 12 }]), RangeError); // module out of range
      assert.throws(() => apply([{ module: 0, yOffset: 0.5, n: 12 }]), RangeError);
      assert.throws(() => apply([{ module: 0, yOffset: -1, n: 12 }]), RangeError);
      assert.throws(() => apply([{ module: 0, yOffset: 0, n: 0 }]), RangeError);
      assert.throws(() => apply([{ module: 0, yOffset: 0, n: '12' }]), TypeError);
      assert.throws(() => apply([{ module: 0, yOffset: 0 }]), TypeError); // n missing
      assert.throws(() => apply([good[0], 7]), TypeError);
      assert.throws(() => apply([good[0], null]), TypeError);
      assert.throws(() => apply({ 0: good[0], length: 1 }), TypeError); // not an array
      assert.throws(() => apply(new Array(1025).fill(good[0])), RangeError);
      assert.throws(() => apply([{ module: 0, yOffset: 0, n: 5 }]), /N=12/); // N differs from the slot's
      assert.throws(() => apply([good[0], { module: 1, yOffset: 12, n: 4 }]), /N=5/);
    });

    test(`${name}: rows, strides and buffers`, () => {
      assert.throws(() => apply(good, { k: 9, xx: r.f32(36) }), /K=8/); // K differs from the slot's
      assert.throws(() => apply(good, { yStride: 16 }), /exceeds out.yStride/); // module 1 ends at 17
      assert.throws(() => apply(good, { yStride: 16 }), RangeError);
      assert.throws(() => apply(good, { yStride: 20.5 }), RangeError);
      assert.throws(() => apply(good, { yy: y.subarray(4) }), RangeError); // y too short for the last row
      assert.throws(() => apply(good, { xx: x.subarray(1) }), RangeError); // x too short
      assert.throws(() => apply(good, { slots: [0, 0, 0, 0, 0] }), RangeError); // 5 rows, x holds 4
      assert.throws(() => apply(good, { yy: new Float64Array(80) as unknown as Float32Array }), TypeError);
      assert.throws(() => apply(good, { xx: new Float64Array(32) as unknown as Float32Array }), TypeError);
      const shared = new Float32Array(200);
      // x (rows 0..3, 32 floats) overlaps y's module columns, not only the gap between them.
      assert.throws(() => apply(good, { yy: shared.subarray(10), xx: shared.subarray(0, 32) }), TypeError);
      apply(good, { yy: shared.subarray(32), xx: shared.subarray(0, 32) }); // adjacent is fine
    });
  }
});
