/**
 * applyAdapters over a per-step row layout (createLoraRows / setLoraRows): native under every ISA against the
 * reference, bitwise the same modules one call each, batch invariance (a row alone, any
 * thread count, any other rows or modules in the call), layout reuse, and argument validation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraDtype, LoraModuleOutput } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, type Rng, restoreDefaults, rng, withThreads } from './implementations.ts';
import { applied, bankOf, close, makeAdapter } from './lora-fixtures.ts';

const DTYPES: LoraDtype[] = ['f32', 'bf16', 'int8'];
const K = 67;
const NS = [53, 21, 21, 130, 1]; // odd sizes, a 1-column module
const RANK_SETS = [
  [1, 128, 0, 5, 9],
  [16, 0, 7, 128, 0],
  [127, 3, 64, 0, 1],
  [0, 0, 0, 0, 0],
  [33, 8, 1, 2, 0],
  [0, 0, 16, 0, 0],
  [4, 4, 4, 4, 4],
];

// SmolLM2-135M's fused shapes: x [M, 576]; q|k|v = 576 + 192 + 192, gate|up = 1536 + 1536.
const SMOL_K = 576;
const SMOL_NS = [576, 192, 192, 1536, 1536];
const QKV: LoraModuleOutput[] = [
  { module: 0, yOffset: 0, n: 576 },
  { module: 1, yOffset: 576, n: 192 },
  { module: 2, yOffset: 768, n: 192 },
];
const GATE_UP: LoraModuleOutput[] = [
  { module: 3, yOffset: 0, n: 1536 },
  { module: 4, yOffset: 1536, n: 1536 },
];

/** A random non-empty subset of the modules at random disjoint offsets with gaps, listed in random order. */
function randomOutputs(r: Rng, ns: number[]): { yStride: number; modules: LoraModuleOutput[] } {
  const chosen = ns.map((_, m) => m).filter(() => r.next() < 0.6);
  if (chosen.length === 0) chosen.push(r.int(0, ns.length - 1));
  let column = r.int(0, 3);
  const modules = chosen.map((module) => {
    const placed = { module, yOffset: column, n: ns[module] };
    column += ns[module] + r.int(0, 3);
    return placed;
  });
  if (modules.length > 1 && r.next() < 0.5) modules.reverse();
  return { yStride: column, modules };
}

/** Slots per row, interleaved: a row's slot is independent of its neighbours' (-1 = base). */
function interleavedSlots(r: Rng, rows: number, numSlots: number): Int32Array {
  return Int32Array.from({ length: rows }, () => r.int(-1, numSlots - 1));
}

for (const isa of availableIsas()) {
  describe(`applyAdapters over a row layout, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of DTYPES)
      test(`${dtype} bank: interleaved slots and base rows match the reference, and the modules one call each bitwise`, () => {
        const r = rng(dtype === 'f32' ? 51 : dtype === 'bf16' ? 61 : 71);
        const adapters = RANK_SETS.map((ranks) => makeAdapter(r, K, NS, ranks));
        const nb = bankOf(native, adapters, NS.length, dtype);
        const rb = bankOf(referenceLoraKernels, adapters, NS.length, dtype);
        for (let trial = 0; trial < 12; trial++) {
          const rows = trial === 0 ? 1 : r.int(1, 40);
          const { yStride, modules } = randomOutputs(r, NS);
          const x = r.f32(rows * K);
          const y0 = r.f32(rows * yStride);
          const rowSlot = trial === 1 ? new Int32Array(rows).fill(-1) : interleavedSlots(r, rows, adapters.length);
          const what = `trial ${trial} (${rows} rows, slots ${rowSlot}, modules ${modules.map((m) => m.module)})`;
          const yn = applied(native, nb, rowSlot, x, K, y0, yStride, modules);
          const yr = applied(referenceLoraKernels, rb, rowSlot, x, K, y0, yStride, modules);
          close(yn, yr, what);
          for (const [kernels, bank, y] of [
            [native, nb, yn],
            [referenceLoraKernels, rb, yr],
          ] as const) {
            let oneByOne: Float32Array = y0;
            for (const m of modules) oneByOne = applied(kernels, bank, rowSlot, x, K, oneByOne, yStride, [m]);
            assertBitwise(y, oneByOne, `${kernels === native ? 'native' : 'reference'}: modules one by one, ${what}`);
          }
        }
      });

    for (const dtype of DTYPES)
      test(`${dtype} bank: fused q|k|v and gate|up: a row is bitwise the same alone, in any batch, any thread count`, () => {
        const r = rng(dtype === 'f32' ? 52 : dtype === 'bf16' ? 62 : 72);
        const adapters = [
          makeAdapter(r, SMOL_K, SMOL_NS, [64, 64, 64, 16, 16]),
          makeAdapter(r, SMOL_K, SMOL_NS, [64, 1, 0, 128, 7]),
          makeAdapter(r, SMOL_K, SMOL_NS, [3, 33, 8, 0, 0]),
          makeAdapter(r, SMOL_K, SMOL_NS, [0, 5, 0, 0, 2]),
        ];
        const bank = bankOf(native, adapters, SMOL_NS.length, dtype);
        // 1 and 2 rows: serial or few-rows paths (module tasks, column chunks); 37: the row-parallel path.
        for (const rowCount of [1, 2, 5, 37]) {
          const x = r.f32(rowCount * SMOL_K);
          const rowSlot = interleavedSlots(r, rowCount, adapters.length);
          for (const modules of [QKV, GATE_UP]) {
            const yStride = modules.reduce((total, m) => total + m.n, 0);
            const y0 = r.f32(rowCount * yStride);
            // Each row alone, each module alone, one thread.
            const alone = y0.slice();
            withThreads(1, () => {
              for (let t = 0; t < rowCount; t++)
                for (const m of modules) {
                  const row = applied(
                    native,
                    bank,
                    rowSlot.subarray(t, t + 1),
                    x.subarray(t * SMOL_K, (t + 1) * SMOL_K),
                    SMOL_K,
                    alone.subarray(t * yStride, (t + 1) * yStride),
                    yStride,
                    [m],
                  );
                  alone.set(row.subarray(m.yOffset, m.yOffset + m.n), t * yStride + m.yOffset);
                }
            });
            const layout = native.createLoraRows();
            native.setLoraRows(layout, rowSlot, rowCount);
            for (const threads of [1, 2, 3]) {
              withThreads(threads, () => {
                const y = y0.slice();
                native.applyAdapters(bank, layout, x, SMOL_K, { y, yStride, modules });
                assertBitwise(
                  y,
                  alone,
                  `${rowCount} rows, modules ${modules.map((m) => m.module)}, ${threads} threads`,
                );
              });
            }
          }
        }
      });

    test('one layout serves every call of a step; setting it again takes effect; empty and base-only layouts', () => {
      const r = rng(53);
      const adapters = RANK_SETS.map((ranks) => makeAdapter(r, K, NS, ranks));
      const nb = bankOf(native, adapters, NS.length, 'f32');
      const rb = bankOf(referenceLoraKernels, adapters, NS.length, 'f32');
      for (const [kernels, bank] of [
        [native, nb],
        [referenceLoraKernels, rb],
      ] as const) {
        const layout = kernels.createLoraRows();
        const rows = 9;
        const x = r.f32(rows * K);
        const first = interleavedSlots(r, rows, adapters.length);
        kernels.setLoraRows(layout, first, rows);
        assert.equal(layout.numRows, rows);
        const calls: LoraModuleOutput[][] = [[{ module: 0, yOffset: 0, n: 53 }], [{ module: 3, yOffset: 2, n: 130 }]];
        for (const modules of calls) {
          const yStride = modules[0].yOffset + modules[0].n;
          const y0 = r.f32(rows * yStride);
          const y = y0.slice();
          kernels.applyAdapters(bank, layout, x, K, { y, yStride, modules });
          assertBitwise(
            y,
            applied(kernels, bank, first, x, K, y0, yStride, modules),
            `reused layout, ${kernels === native ? 'native' : 'reference'}`,
          );
        }
        // A second step: other slots, fewer rows.
        const second = interleavedSlots(r, 4, adapters.length);
        kernels.setLoraRows(layout, second, 4);
        assert.equal(layout.numRows, 4);
        const y0 = r.f32(4 * 53);
        const y = y0.slice();
        const modules = [{ module: 0, yOffset: 0, n: 53 }];
        kernels.applyAdapters(bank, layout, x, K, { y, yStride: 53, modules });
        assertBitwise(y, applied(kernels, bank, second, x, K, y0, 53, modules), 'layout set again');
        // Nothing to do: no rows, only base rows, no modules.
        for (const rowSlot of [new Int32Array(0), Int32Array.of(-1, -1, -1)]) {
          kernels.setLoraRows(layout, rowSlot, rowSlot.length);
          const untouched = r.f32(3 * 53);
          const before = untouched.slice();
          kernels.applyAdapters(bank, layout, x, K, { y: untouched, yStride: 53, modules });
          kernels.applyAdapters(bank, layout, x, K, { y: untouched, yStride: 53, modules: [] });
          assertBitwise(untouched, before, `rows ${rowSlot}`);
        }
      }
    });

    test('many adapters: 100 slots with their own ranks per module, 64 interleaved decode rows', () => {
      const r = rng(54);
      const ns = [80, 24, 24];
      const adapters = Array.from({ length: 100 }, () =>
        makeAdapter(
          r,
          96,
          ns,
          ns.map(() => (r.next() < 0.15 ? 0 : r.int(1, 128))),
        ),
      );
      const nb = bankOf(native, adapters, ns.length, 'bf16');
      const rb = bankOf(referenceLoraKernels, adapters, ns.length, 'bf16');
      const modules = [
        { module: 0, yOffset: 0, n: 80 },
        { module: 1, yOffset: 80, n: 24 },
        { module: 2, yOffset: 104, n: 24 },
      ];
      const x = r.f32(64 * 96);
      const y0 = r.f32(64 * 128);
      const rowSlot = interleavedSlots(r, 64, 100);
      close(
        applied(native, nb, rowSlot, x, 96, y0, 128, modules),
        applied(referenceLoraKernels, rb, rowSlot, x, 96, y0, 128, modules),
        '100 adapters',
      );
    });
  });
}

describe('applyAdapters and setLoraRows reject bad arguments (reference and native alike)', () => {
  const r = rng(56);
  const ns = [12, 5, 7];
  const adapter = makeAdapter(r, 8, ns, [3, 2, 0]);
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    const other = kernels === nativeLoraKernels ? referenceLoraKernels : nativeLoraKernels;
    const bank = kernels.createLoraBank(2, 3);
    kernels.setLoraSlot(bank, 0, adapter);
    const x = r.f32(4 * 8);
    const y = r.f32(4 * 20);
    const modules = [
      { module: 0, yOffset: 0, n: 12 },
      { module: 1, yOffset: 12, n: 5 },
    ];
    const layoutOf = (slots: number[]) => {
      const rows = kernels.createLoraRows();
      kernels.setLoraRows(rows, Int32Array.from(slots), slots.length);
      return rows;
    };
    const apply = (slots: number[], xx = x, yy = y, mods: LoraModuleOutput[] = modules) =>
      kernels.applyAdapters(bank, layoutOf(slots), xx, 8, { y: yy, yStride: 20, modules: mods });

    test(`${name}: rows`, () => {
      apply([0, -1, 0, -1]);
      const rows = kernels.createLoraRows();
      assert.throws(() => kernels.setLoraRows(rows, Int32Array.of(0, -2), 2), RangeError);
      assert.throws(() => kernels.setLoraRows(rows, Int32Array.of(0), 2), RangeError);
      assert.throws(() => kernels.setLoraRows(rows, [0, 0] as unknown as Int32Array, 2), TypeError);
      assert.throws(() => kernels.setLoraRows(rows, Int32Array.of(0), 0.5), RangeError);
      assert.throws(() => kernels.setLoraRows(other.createLoraRows(), Int32Array.of(0), 1), TypeError);
      assert.throws(() => apply([0, 1, 0, 0]), /slot 1 is empty/); // checked against the bank at the call
      assert.throws(() => apply([0, 2]), RangeError); // past the bank's slots
      assert.throws(() => apply([0, 0, 0, 0, 0]), RangeError); // 5 rows, x holds 4
      assert.throws(() => apply([-1, -1, -1, -1, -1]), RangeError); // base rows count too
      assert.throws(() => apply([0, 0, 0, 0], x, y.subarray(4)), RangeError); // y too short
      assert.throws(() => apply([0], x, y, [{ module: 0, yOffset: 0, n: 5 }]), /N=12/);
      assert.throws(() => apply([0], x, y, [modules[0], { module: 1, yOffset: 11, n: 5 }]), /overlap/);
      assert.throws(
        () => kernels.applyAdapters(bank, other.createLoraRows(), x, 8, { y, yStride: 20, modules }),
        TypeError,
      );
      assert.throws(
        () => kernels.applyAdapters(other.createLoraBank(2, 3), layoutOf([0]), x, 8, { y, yStride: 20, modules }),
        TypeError,
      );
      const shared = new Float32Array(200);
      assert.throws(() => apply([0, 0, 0, 0], shared.subarray(0, 32), shared.subarray(10)), TypeError);
    });
  }
});
