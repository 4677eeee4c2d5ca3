/**
 * Multi-module LoRA kernels (loraSgmvMulti, loraBgmvMulti: several modules sharing x and y, as q|k|v and
 * gate|up): native under every ISA against the reference, bitwise equality with the same modules called
 * one by one (any thread count, any batch), what must stay untouched, and argument validation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, LoraMultiOutput, PackedAdapter } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, type Rng, restoreDefaults, rng, withThreads } from './implementations.ts';
import { close, makeAdapter, randomSegments, tokenSlotsOf } from './lora-fixtures.ts';

type LoraKernels = typeof nativeLoraKernels;

/** The same adapters in a native and a reference bank. */
function twinBanks(adapters: PackedAdapter[], numModules: number, dtype: LoraDtype) {
  const nb = nativeLoraKernels.createLoraBank(adapters.length, numModules, dtype);
  const rb = referenceLoraKernels.createLoraBank(adapters.length, numModules, dtype);
  adapters.forEach((a, s) => {
    nativeLoraKernels.setLoraSlot(nb, s, a);
    referenceLoraKernels.setLoraSlot(rb, s, a);
  });
  return { nb, rb };
}

/** A random non-empty subset of the modules, in random order, at random disjoint offsets with gaps. */
function randomOutputs(r: Rng, ns: number[]): { yStride: number; modules: LoraModuleOutput[] } {
  const chosen = ns.map((_, m) => m).filter(() => r.next() < 0.6);
  if (chosen.length === 0) chosen.push(r.int(0, ns.length - 1));
  for (let i = chosen.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
  }
  let column = r.int(0, 3);
  const modules = chosen.map((module) => {
    const placed = { module, yOffset: column, n: ns[module] };
    column += ns[module] + r.int(0, 3);
    return placed;
  });
  // List them in another order than their columns, so the kernels cannot rely on sorted offsets.
  if (modules.length > 1 && r.next() < 0.5) modules.reverse();
  return { yStride: column, modules };
}

/** Each module of `out` by its own single-module call, in list order. */
function oneByOne(
  kernels: LoraKernels,
  bank: LoraBank,
  x: Float32Array,
  k: number,
  out: LoraMultiOutput,
  rows: { segStart: Int32Array; segSlot: Int32Array; numSegments: number } | { tokenSlot: Int32Array },
) {
  for (const { module, yOffset, n } of out.modules) {
    const single = { y: out.y, yStride: out.yStride, yOffset };
    if ('tokenSlot' in rows) kernels.loraBgmv(bank, module, x, k, single, n, rows.tokenSlot, rows.tokenSlot.length);
    else kernels.loraSgmv(bank, module, x, k, single, n, rows.segStart, rows.segSlot, rows.numSegments);
  }
}

const DTYPES: LoraDtype[] = ['f32', 'bf16'];
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

for (const isa of availableIsas()) {
  describe(`multi-module LoRA kernels, native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of DTYPES)
      test(`${dtype} bank: random modules, segments and tokens match the reference and the one-by-one calls`, () => {
        const r = rng(dtype === 'f32' ? 31 : 41);
        const adapters = RANK_SETS.map((ranks) => makeAdapter(r, K, NS, ranks));
        const { nb, rb } = twinBanks(adapters, NS.length, dtype);
        for (let trial = 0; trial < 10; trial++) {
          const rows = trial === 0 ? 1 : r.int(1, 40);
          const { yStride, modules } = randomOutputs(r, NS);
          const x = r.f32(rows * K);
          const y0 = r.f32(rows * yStride);
          const segments = randomSegments(r, rows, adapters.length);
          const { segStart, segSlot, numSegments } = segments;
          const run = (call: (out: LoraMultiOutput) => void) => {
            const out = { y: y0.slice(), yStride, modules };
            call(out);
            return out.y;
          };
          const what = `trial ${trial} (${rows} rows, modules ${modules.map((m) => m.module)})`;
          const sgmv = (kernels: LoraKernels, bank: LoraBank) =>
            run((out) => kernels.loraSgmvMulti(bank, x, K, out, segStart, segSlot, numSegments));
          const ys = sgmv(native, nb);
          const expected = sgmv(referenceLoraKernels, rb);
          close(ys, expected, `SGMV ${what}`);
          assertBitwise(
            ys,
            run((out) => oneByOne(native, nb, x, K, out, segments)),
            `SGMV vs one by one, ${what}`,
          );
          const tokenSlot = tokenSlotsOf(segStart, segSlot, numSegments);
          const bgmv = (kernels: LoraKernels, bank: LoraBank) =>
            run((out) => kernels.loraBgmvMulti(bank, x, K, out, tokenSlot, rows));
          const yb = bgmv(native, nb);
          close(yb, bgmv(referenceLoraKernels, rb), `BGMV ${what}`);
          assertBitwise(yb, ys, `BGMV vs SGMV, ${what}`);
          assertBitwise(
            yb,
            run((out) => oneByOne(native, nb, x, K, out, { tokenSlot })),
            `BGMV vs one by one, ${what}`,
          );
        }
      });

    for (const dtype of DTYPES)
      test(`${dtype} bank: fused q|k|v and gate|up are bitwise the modules one by one, rows alone, any thread count`, () => {
        const r = rng(dtype === 'f32' ? 32 : 42);
        // Ranks 1..128 mixed across modules; slot 3 targets only k and up. With 1 or 2 rows, slots 0 and 1
        // reach the parallel paths for few rows: one task per module (2 or 3 threads) or column chunks.
        const adapters = [
          makeAdapter(r, SMOL_K, SMOL_NS, [64, 64, 64, 16, 16]),
          makeAdapter(r, SMOL_K, SMOL_NS, [64, 1, 0, 128, 7]),
          makeAdapter(r, SMOL_K, SMOL_NS, [3, 33, 8, 0, 0]),
          makeAdapter(r, SMOL_K, SMOL_NS, [0, 5, 0, 0, 2]),
        ];
        const bank = native.createLoraBank(adapters.length, SMOL_NS.length, dtype);
        for (const [s, a] of adapters.entries()) native.setLoraSlot(bank, s, a);
        // 1 and 2 rows: serial or few-rows paths; 5: serial or row paths; 37: the row-parallel path.
        for (const rows of [1, 2, 5, 37]) {
          const x = r.f32(rows * SMOL_K);
          const slots = Int32Array.from({ length: rows }, () => r.int(-1, adapters.length - 1));
          for (const modules of [QKV, GATE_UP]) {
            const yStride = modules.reduce((total, m) => total + m.n, 0);
            const y0 = r.f32(rows * yStride);
            // Each row alone, each module by its own call, one thread.
            const alone = y0.slice();
            withThreads(1, () => {
              for (let t = 0; t < rows; t++) {
                const out = { y: alone.subarray(t * yStride, (t + 1) * yStride), yStride, modules };
                oneByOne(native, bank, x.subarray(t * SMOL_K, (t + 1) * SMOL_K), SMOL_K, out, {
                  tokenSlot: slots.subarray(t, t + 1),
                });
              }
            });
            const what = `${rows} rows, modules ${modules.map((m) => m.module)}`;
            for (const threads of [1, 2, 3]) {
              withThreads(threads, () => {
                const yb = y0.slice();
                native.loraBgmvMulti(bank, x, SMOL_K, { y: yb, yStride, modules }, slots, rows);
                assertBitwise(yb, alone, `BGMV, ${what}, ${threads} threads`);
                const ys = y0.slice();
                const perRow = Int32Array.from({ length: rows + 1 }, (_, i) => i);
                native.loraSgmvMulti(bank, x, SMOL_K, { y: ys, yStride, modules }, perRow, slots, rows);
                assertBitwise(ys, alone, `SGMV one row per segment, ${what}, ${threads} threads`);
                // One long segment per slot vs those rows alone with that slot.
                for (let slot = 0; slot < adapters.length; slot++) {
                  const ylong = y0.slice();
                  const segStart = Int32Array.of(0, rows);
                  native.loraSgmvMulti(
                    bank,
                    x,
                    SMOL_K,
                    { y: ylong, yStride, modules },
                    segStart,
                    Int32Array.of(slot),
                    1,
                  );
                  const expected = y0.slice();
                  withThreads(1, () => {
                    for (let t = 0; t < rows; t++) {
                      const out = { y: expected.subarray(t * yStride, (t + 1) * yStride), yStride, modules };
                      native.loraBgmvMulti(bank, x.subarray(t * SMOL_K), SMOL_K, out, Int32Array.of(slot), 1);
                    }
                  });
                  assertBitwise(ylong, expected, `slot ${slot} segment, ${what}, ${threads} threads`);
                }
              });
            }
          }
        }
      });

    test('gaps between modules, modules a slot does not target and base rows stay bitwise untouched', () => {
      const r = rng(33);
      const adapter = makeAdapter(r, K, NS, [6, 0, 3, 0, 2]);
      const { nb } = twinBanks([adapter], NS.length, 'f32');
      const modules = [
        { module: 0, yOffset: 2, n: 53 },
        { module: 1, yOffset: 60, n: 21 }, // rank 0 in slot 0
        { module: 2, yOffset: 81, n: 21 },
      ];
      const yStride = 105;
      const rows = 5;
      const x = r.f32(rows * K);
      const y0 = r.f32(rows * yStride);
      const y = y0.slice();
      const segStart = Int32Array.of(0, 2, 3, 5);
      native.loraSgmvMulti(nb, x, K, { y, yStride, modules }, segStart, Int32Array.of(-1, 0, -1), 3);
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
      assert.notDeepEqual(row(y, 2, 81, 102), row(y0, 2, 81, 102));
      // A slot targeting none of the call's modules leaves everything as it was.
      const untargeted = [{ module: 1, yOffset: 0, n: 21 }];
      const y1 = r.f32(3 * 21);
      const y1before = y1.slice();
      native.loraBgmvMulti(nb, x, K, { y: y1, yStride: 21, modules: untargeted }, Int32Array.of(0, -1, 0), 3);
      native.loraSgmvMulti(
        nb,
        x,
        K,
        { y: y1, yStride: 21, modules: untargeted },
        Int32Array.of(0, 3),
        Int32Array.of(0),
        1,
      );
      assertBitwise(y1, y1before, 'untargeted module');
    });

    test('many adapters: 100 slots with their own ranks per module, decode batch of 64, fused like q|k|v', () => {
      const r = rng(34);
      const ns = [80, 24, 24];
      const adapters = Array.from({ length: 100 }, () =>
        makeAdapter(
          r,
          96,
          ns,
          ns.map(() => (r.next() < 0.15 ? 0 : r.int(1, 128))),
        ),
      );
      const { nb, rb } = twinBanks(adapters, ns.length, 'bf16');
      const modules = [
        { module: 0, yOffset: 0, n: 80 },
        { module: 1, yOffset: 80, n: 24 },
        { module: 2, yOffset: 104, n: 24 },
      ];
      const x = r.f32(64 * 96);
      const y0 = r.f32(64 * 128);
      const slots = Int32Array.from({ length: 64 }, () => r.int(-1, 99));
      const yn = y0.slice();
      const yr = y0.slice();
      native.loraBgmvMulti(nb, x, 96, { y: yn, yStride: 128, modules }, slots, 64);
      referenceLoraKernels.loraBgmvMulti(rb, x, 96, { y: yr, yStride: 128, modules }, slots, 64);
      close(yn, yr, 'BGMV over 100 adapters');
    });

    test('one token, no segments, no tokens, all-empty segments and no modules', () => {
      const r = rng(35);
      const adapter = makeAdapter(r, K, NS, [3, 11, 2, 1, 5]);
      const { nb, rb } = twinBanks([adapter], NS.length, 'f32');
      const modules = [
        { module: 3, yOffset: 0, n: 130 },
        { module: 4, yOffset: 130, n: 1 },
      ];
      const x = r.f32(K);
      const y0 = r.f32(131);
      const yn = y0.slice();
      const yr = y0.slice();
      native.loraBgmvMulti(nb, x, K, { y: yn, yStride: 131, modules }, Int32Array.of(0), 1);
      referenceLoraKernels.loraBgmvMulti(rb, x, K, { y: yr, yStride: 131, modules }, Int32Array.of(0), 1);
      close(yn, yr, 'one token');
      for (const kernels of [native, referenceLoraKernels]) {
        const bank = kernels === native ? nb : rb;
        const y = y0.slice();
        const out = { y, yStride: 131, modules };
        kernels.loraSgmvMulti(bank, x, K, out, new Int32Array(0), new Int32Array(0), 0);
        kernels.loraBgmvMulti(bank, x, K, out, new Int32Array(0), 0);
        kernels.loraSgmvMulti(bank, x, K, out, Int32Array.of(0, 0, 0), Int32Array.of(0, 0), 2);
        kernels.loraSgmvMulti(bank, x, K, { ...out, modules: [] }, Int32Array.of(0, 1), Int32Array.of(0), 1);
        kernels.loraBgmvMulti(bank, x, K, { ...out, modules: [] }, Int32Array.of(0), 1);
        assertBitwise(y, y0, 'nothing to do');
      }
    });
  });
}

describe('multi-module LoRA kernels reject bad arguments (reference and native alike)', () => {
  const r = rng(36);
  const ns = [12, 5, 7];
  const adapter = makeAdapter(r, 8, ns, [3, 2, 0]);
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    const bank = kernels.createLoraBank(2, 3);
    kernels.setLoraSlot(bank, 0, adapter);
    const x = r.f32(4 * 8);
    const y = r.f32(4 * 20);
    const good = [
      { module: 0, yOffset: 0, n: 12 },
      { module: 1, yOffset: 12, n: 5 },
    ];
    const seg = (modules: unknown, yStride = 20, yy: Float32Array = y, xx: Float32Array = x, slot = 0) =>
      kernels.loraSgmvMulti(
        bank,
        xx,
        8,
        { y: yy, yStride, modules: modules as LoraModuleOutput[] },
        Int32Array.of(0, 4),
        Int32Array.of(slot),
        1,
      );
    const tok = (modules: unknown, slots = [0, 0, 0, 0]) =>
      kernels.loraBgmvMulti(
        bank,
        x,
        8,
        { y, yStride: 20, modules: modules as LoraModuleOutput[] },
        Int32Array.from(slots),
        slots.length,
      );

    test(`${name}: module lists`, () => {
      seg(good);
      tok(good);
      seg([good[1], good[0]]); // any order
      seg([...good, { module: 2, yOffset: 17, n: 3 }]); // slot 0 does not target module 2: nothing to check
      assert.throws(() => seg([good[0], { module: 1, yOffset: 11, n: 5 }]), /overlap/); // columns overlap
      assert.throws(() => seg([good[0], { module: 1, yOffset: 11, n: 5 }]), RangeError);
      assert.throws(() => seg([good[0], { ...good[0] }]), RangeError); // the same columns twice
      assert.throws(() => seg([{ module: 3, yOffset: 0, n: 12 }]), RangeError); // module out of range
      assert.throws(() => seg([{ module: 0, yOffset: 0.5, n: 12 }]), RangeError);
      assert.throws(() => seg([{ module: 0, yOffset: -1, n: 12 }]), RangeError);
      assert.throws(() => seg([{ module: 0, yOffset: 0, n: 0 }]), RangeError);
      assert.throws(() => seg([{ module: 0, yOffset: 0, n: '12' }]), TypeError);
      assert.throws(() => seg([{ module: 0, yOffset: 0 }]), TypeError); // n missing
      assert.throws(() => seg([good[0], 7]), TypeError);
      assert.throws(() => seg([good[0], null]), TypeError);
      assert.throws(() => seg({ 0: good[0], length: 1 }), TypeError); // not an array
      assert.throws(() => seg(new Array(1025).fill(good[0])), RangeError);
      assert.throws(() => seg([{ module: 0, yOffset: 0, n: 5 }]), /N=12/); // N differs from the slot's
      assert.throws(() => seg([good[0], { module: 1, yOffset: 12, n: 6 }]), RangeError);
      assert.throws(() => tok([good[0], { module: 1, yOffset: 12, n: 4 }]), /N=5/);
    });

    test(`${name}: rows, strides and slots`, () => {
      assert.throws(() => seg(good, 16), /exceeds out.yStride/); // module 1 ends at 17
      assert.throws(() => seg(good, 16), RangeError);
      assert.throws(() => seg(good, 20, y.subarray(4)), RangeError); // y too short for the last row
      assert.throws(() => seg(good, 20, y, x.subarray(1)), RangeError); // x too short
      assert.throws(() => seg(good, 20, y, x, 1), /slot 1 is empty/);
      assert.throws(() => seg(good, 20, y, x, 2), RangeError);
      assert.throws(() => tok(good, [0, 0, 0, 0, 0]), RangeError); // 5 tokens, x holds 4
      const shared = new Float32Array(200);
      // x (rows 0..3, 32 floats) overlaps y's module columns, not only the gap between them.
      assert.throws(() => seg(good, 20, shared.subarray(10), shared.subarray(0, 32)), TypeError);
      seg(good, 20, shared.subarray(32), shared.subarray(0, 32)); // adjacent is fine
      assert.throws(
        () =>
          kernels.loraSgmvMulti(
            bank,
            x,
            8,
            { y, yStride: 20, modules: good },
            [0, 4] as unknown as Int32Array,
            Int32Array.of(0),
            1,
          ),
        TypeError,
      );
      assert.throws(
        () =>
          kernels.loraSgmvMulti(
            bank,
            x,
            8,
            { y, yStride: 20, modules: good },
            Int32Array.of(0, 4),
            Int32Array.of(0),
            2,
          ),
        RangeError,
      );
      const other = kernels === nativeLoraKernels ? referenceLoraKernels : nativeLoraKernels;
      assert.throws(
        () =>
          kernels.loraBgmvMulti(
            other.createLoraBank(2, 3),
            x,
            8,
            { y, yStride: 20, modules: good },
            Int32Array.of(0),
            1,
          ),
        TypeError,
      );
    });
  }
});
