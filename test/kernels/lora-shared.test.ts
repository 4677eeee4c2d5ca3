/**
 * Shared factors and scaling vectors (VeRA, Tied-LoRA): modules of a slot pointing at one region of
 * PackedAdapter.weights, rank scales (λd, after the shrink) and column scales (λb, folded into the scale per
 * column), next to plain LoRA slots, a DoRA slot and base rows in one applyAdapters call. Native under every
 * ISA and bank dtype against the reference, the reference against the formula in f64, batch invariance,
 * a shared region counted once in the bank's bytes, and argument validation (reference and native alike).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, quantizeRowInt8 } from '../../src/kernels/dtype.ts';
import { loadAddon, setIsa } from '../../src/kernels/native/addon.ts';
import { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import { referenceLoraKernels } from '../../src/kernels/reference/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import { assertBitwise, availableIsas, type Rng, restoreDefaults, rng, withThreads } from './implementations.ts';
import { applied, bankOf, close, eachRowAlone, makeAdapter, makeSharedAdapter, withVectors } from './lora-fixtures.ts';

const DTYPES: LoraDtype[] = ['f32', 'bf16', 'f16', 'int8'];

/**
 * The adapter's weights as a bank of `dtype` holds them, in f64: rounded to bf16 / f16, or each row of every A
 * and Bt region quantized to int8 and multiplied back by its scale (exact in f64).
 */
function storedWeights(adapter: PackedAdapter, dtype: LoraDtype): Float64Array {
  const w = Float64Array.from(adapter.weights);
  if (dtype === 'bf16') return w.map((v) => bf16ToF32(f32ToBf16(v)));
  if (dtype === 'f16') return w.map((v) => f16ToF32(f32ToF16(v)));
  if (dtype !== 'int8') return w;
  const q = new Float32Array(adapter.weights.length);
  adapter.rank.forEach((rank, m) => {
    for (const [offset, len] of [
      [adapter.offsetA[m], adapter.inFeatures[m]],
      [adapter.offsetB[m], adapter.outFeatures[m]],
    ]) {
      for (let j = 0; j < rank; j++) {
        const s = quantizeRowInt8(adapter.weights, offset + j * len, len, q, offset + j * len);
        for (let i = 0; i < len; i++) w[offset + j * len + i] = q[offset + j * len + i] * s;
      }
    }
  });
  return w;
}

/**
 * The formula, plainly in f64, on materialized factors: A' = diag(λd)·A, Bt'[j, n] = scale·λb[n]·Bt[j, n]
 * (A and Bt rounded as the bank stores them), y = s · (y + x·A'ᵀ·Bt').
 */
function expectedF64(
  adapters: PackedAdapter[],
  dtype: LoraDtype,
  rowSlot: Int32Array,
  x: Float32Array,
  k: number,
  y0: Float32Array,
  yStride: number,
  modules: LoraModuleOutput[],
): Float32Array {
  const stored = adapters.map((a) => storedWeights(a, dtype));
  const y = Float64Array.from(y0);
  for (let t = 0; t < rowSlot.length; t++) {
    const a = adapters[rowSlot[t]];
    if (!a) continue;
    const w = stored[rowSlot[t]];
    for (const { module: m, yOffset, n } of modules) {
      const rank = a.rank[m];
      if (rank === 0) continue;
      const rs = a.offsetRankScale && a.offsetRankScale[m] >= 0 ? a.offsetRankScale[m] : -1;
      const cs = a.offsetColumnScale && a.offsetColumnScale[m] >= 0 ? a.offsetColumnScale[m] : -1;
      const os = a.offsetOutScale && a.offsetOutScale[m] >= 0 ? a.offsetOutScale[m] : -1;
      const h = new Float64Array(rank);
      for (let j = 0; j < rank; j++) {
        const lambda = rs >= 0 ? a.rankScale![rs + j] : 1;
        for (let i = 0; i < k; i++) h[j] += x[t * k + i] * (lambda * w[a.offsetA[m] + j * k + i]);
      }
      for (let c = 0; c < n; c++) {
        const scale = a.scale[m] * (cs >= 0 ? a.columnScale![cs + c] : 1);
        let delta = 0;
        for (let j = 0; j < rank; j++) delta += h[j] * (scale * w[a.offsetB[m] + j * n + c]);
        const at = t * yStride + yOffset + c;
        y[at] = (y[at] + delta) * (os >= 0 ? a.outScale![os + c] : 1);
      }
    }
  }
  return Float32Array.from(y);
}

/** The adapter with every module's A and Bt copied into a region of its own (nothing shared). */
function unshared(adapter: PackedAdapter): PackedAdapter {
  const parts: number[] = [];
  const offsetA = new Int32Array(adapter.rank.length);
  const offsetB = new Int32Array(adapter.rank.length);
  const copy = (from: number, length: number) => {
    const at = parts.length;
    for (let i = 0; i < length; i++) parts.push(adapter.weights[from + i]);
    return at;
  };
  adapter.rank.forEach((rank, m) => {
    if (rank === 0) return;
    offsetA[m] = copy(adapter.offsetA[m], rank * adapter.inFeatures[m]);
    offsetB[m] = copy(adapter.offsetB[m], rank * adapter.outFeatures[m]);
  });
  return { ...adapter, weights: Float32Array.from(parts), offsetA, offsetB };
}

const K = 67;
const NS = [53, 21, 53, 130]; // modules 0 and 2 share N, so they share Bt too
const MODULES: LoraModuleOutput[] = [
  { module: 3, yOffset: 0, n: 130 },
  { module: 0, yOffset: 131, n: 53 },
  { module: 1, yOffset: 184, n: 21 },
  { module: 2, yOffset: 206, n: 53 },
];
const Y_STRIDE = 260;
const ALL = [true, true, true, true];

/** Slots 0-3 shared (λd only, λb only, both, both with DoRA and module 1 untargeted), 4 LoRA, 5 DoRA. */
function mixedAdapters(r: Rng, ranks: number[]): PackedAdapter[] {
  const partial = [true, false, true, true];
  return [
    withVectors(r, makeSharedAdapter(r, K, NS, ranks[0], ALL), { rank: ALL }),
    withVectors(r, makeSharedAdapter(r, K, NS, ranks[1], ALL), { column: [true, true, false, true] }),
    withVectors(r, makeSharedAdapter(r, K, NS, ranks[2], ALL), { rank: ALL, column: ALL }),
    withVectors(r, makeSharedAdapter(r, K, NS, ranks[3], partial), { rank: partial, column: partial, out: partial }),
    makeAdapter(r, K, NS, [8, 0, 1, 128]),
    withVectors(r, makeAdapter(r, K, NS, [5, 7, 0, 16]), { out: [true, false, false, true] }),
  ];
}

/** Bank bytes as the native bank counts them (what it reports to the GC). */
function nativeBytes(bank: LoraBank): number {
  return loadAddon().loraBankBytes((bank as unknown as { handle: unknown }).handle);
}

for (const isa of availableIsas()) {
  describe(`shared factors and scaling vectors (VeRA), native-${isa}`, () => {
    const native = nativeLoraKernels;
    before(() => setIsa(isa));
    after(restoreDefaults);

    for (const dtype of DTYPES)
      test(`${dtype} bank: shared and vectored slots next to LoRA, DoRA and base rows: the reference, and f64`, () => {
        const r = rng(dtype === 'f32' ? 91 : dtype === 'bf16' ? 92 : dtype === 'f16' ? 93 : 81);
        for (const ranks of [
          [1, 128, 7, 16],
          [r.int(1, 128), r.int(1, 128), r.int(1, 128), r.int(1, 128)],
        ]) {
          const adapters = mixedAdapters(r, ranks);
          const nb = bankOf(native, adapters, NS.length, dtype);
          const rb = bankOf(referenceLoraKernels, adapters, NS.length, dtype);
          for (const rows of [1, 2, 9, 40]) {
            const x = r.f32(rows * K);
            const y0 = r.f32(rows * Y_STRIDE);
            const rowSlot = Int32Array.from({ length: rows }, (_, t) => (t < 4 ? t : r.int(-1, adapters.length - 1)));
            const what = `ranks ${ranks}, ${rows} rows, slots ${rowSlot}`;
            const yn = applied(native, nb, rowSlot, x, K, y0, Y_STRIDE, MODULES);
            const yr = applied(referenceLoraKernels, rb, rowSlot, x, K, y0, Y_STRIDE, MODULES);
            close(yn, yr, `native vs reference, ${what}`);
            close(yr, expectedF64(adapters, dtype, rowSlot, x, K, y0, Y_STRIDE, MODULES), `reference vs f64, ${what}`);
            for (let t = 0; t < rows; t++) {
              const row = (y: Float32Array) => y.subarray(t * Y_STRIDE, (t + 1) * Y_STRIDE);
              if (rowSlot[t] === -1) assertBitwise(row(yn), row(y0), `base row ${t}`);
              for (const c of [130, 259]) assert.equal(row(yn)[c], row(y0)[c], `row ${t}, gap column ${c}`);
            }
          }
        }
      });

    for (const dtype of DTYPES)
      test(`${dtype} bank: sharing changes no bits; λd = 1 and λb = 1 are bitwise no vectors`, () => {
        const r = rng(dtype === 'f32' ? 94 : dtype === 'bf16' ? 95 : dtype === 'f16' ? 96 : 84);
        const shared = makeSharedAdapter(r, K, NS, 12, [true, true, false, true]);
        const targeted = [true, true, false, true];
        const ones = withVectors(r, shared, { rank: targeted, column: targeted });
        ones.rankScale!.fill(1);
        ones.columnScale!.fill(1);
        for (const kernels of [native, referenceLoraKernels]) {
          const name = kernels === native ? 'native' : 'reference';
          const banks = [shared, unshared(shared), ones].map((a) => bankOf(kernels, [a], NS.length, dtype));
          for (const rows of [1, 5, 33]) {
            const x = r.f32(rows * K);
            const y0 = r.f32(rows * Y_STRIDE);
            const rowSlot = new Int32Array(rows);
            const [y, yUnshared, yOnes] = banks.map((b) => applied(kernels, b, rowSlot, x, K, y0, Y_STRIDE, MODULES));
            assertBitwise(y, yUnshared, `${name}: shared vs copied regions, ${rows} rows`);
            assertBitwise(y, yOnes, `${name}: unit vectors vs none, ${rows} rows`);
          }
        }
      });

    for (const dtype of DTYPES)
      test(`${dtype} bank: a vectored row is bitwise the same alone or batched, any thread count (q|k|v shapes)`, () => {
        const r = rng(dtype === 'f32' ? 97 : dtype === 'bf16' ? 98 : dtype === 'f16' ? 99 : 87);
        const k = 576;
        const ns = [576, 192, 192];
        const yStride = 960;
        const modules: LoraModuleOutput[] = [
          { module: 0, yOffset: 0, n: 576 },
          { module: 1, yOffset: 576, n: 192 },
          { module: 2, yOffset: 768, n: 192 },
        ];
        const on = [true, true, true];
        const adapters = [
          withVectors(r, makeSharedAdapter(r, k, ns, 64, on), { rank: on, column: on }),
          withVectors(r, makeSharedAdapter(r, k, ns, 1, on), { rank: on, column: [false, true, true], out: on }),
          makeAdapter(r, k, ns, [16, 0, 8]),
        ];
        const bank = bankOf(native, adapters, ns.length, dtype);
        // 1 and 2 rows: the serial or column-split paths (each task recomputes its shrink); 37: row blocks.
        for (const rows of [1, 2, 37]) {
          const x = r.f32(rows * k);
          const y0 = r.f32(rows * yStride);
          const rowSlot = Int32Array.from({ length: rows }, (_, t) => (t < 2 ? t : r.int(-1, 2)));
          const alone = eachRowAlone(native, bank, rowSlot, x, k, y0, yStride, modules);
          for (const threads of [1, 2, 3])
            withThreads(threads, () =>
              assertBitwise(
                applied(native, bank, rowSlot, x, k, y0, yStride, modules),
                alone,
                `${rows} rows, ${threads} threads`,
              ),
            );
        }
      });
  });
}

describe('a shared region is stored once per slot (native bank bytes)', () => {
  const round64 = (bytes: number) => Math.ceil(bytes / 64) * 64;
  for (const dtype of DTYPES)
    test(`${dtype} bank`, () => {
      const r = rng(100);
      const element = dtype === 'f32' ? 4 : dtype === 'int8' ? 1 : 2;
      const rank = 9;
      // A region of `count` weights in `rank` rows: int8 rows carry an f32 scale each, after the values.
      const region = (count: number) => round64(count * element) + (dtype === 'int8' ? round64(rank * 4) : 0);
      const shared = makeSharedAdapter(r, K, NS, rank, ALL);
      const vectored = withVectors(r, shared, {
        rank: ALL,
        column: [true, false, false, true],
        out: [true, false, false, false],
      });
      const bank = nativeLoraKernels.createLoraBank(2, NS.length, dtype);
      assert.equal(nativeBytes(bank), 0);
      nativeLoraKernels.setLoraSlot(bank, 0, shared);
      // One A [9, 67], one Bt per distinct N (53, 21, 130).
      const sharedBytes = [rank * K, rank * 53, rank * 21, rank * 130].reduce((sum, n) => sum + region(n), 0);
      assert.equal(nativeBytes(bank), sharedBytes);
      nativeLoraKernels.setLoraSlot(bank, 1, unshared(shared));
      const copiedBytes = NS.reduce((sum, n) => sum + region(rank * K) + region(rank * n), 0);
      assert.equal(nativeBytes(bank), sharedBytes + copiedBytes);
      // Vectors are f32 and per module: λd [9] × 4, λb [53] and [130], outScale [53].
      nativeLoraKernels.setLoraSlot(bank, 1, vectored);
      const vectorBytes = 4 * round64(rank * 4) + round64(53 * 4) + round64(130 * 4) + round64(53 * 4);
      assert.equal(nativeBytes(bank), 2 * sharedBytes + vectorBytes);
      nativeLoraKernels.clearLoraSlot(bank, 0);
      nativeLoraKernels.clearLoraSlot(bank, 1);
      assert.equal(nativeBytes(bank), 0);
    });
});

describe('rank and column scales are validated (reference and native alike)', () => {
  const r = rng(101);
  const ns = [12, 5, 7];
  const adapter = makeAdapter(r, 8, ns, [3, 2, 0]);
  const pairs = [
    { values: 'rankScale', offsets: 'offsetRankScale', good: [0, 3, -1], overflow: [4, -1, -1] }, // 4 + 3 > 6
    { values: 'columnScale', offsets: 'offsetColumnScale', good: [0, 12, -1], overflow: [9, -1, -1] }, // 9 + 12 > 17
  ] as const;
  for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
    const name = kernels === nativeLoraKernels ? 'native' : 'reference';
    for (const { values, offsets, good, overflow } of pairs)
      test(`${name}: ${values} and ${offsets}`, () => {
        const bank = kernels.createLoraBank(1, 3);
        const length = values === 'rankScale' ? 6 : 17;
        const set = (v: unknown, o: unknown) =>
          kernels.setLoraSlot(bank, 0, { ...adapter, [values]: v, [offsets]: o } as PackedAdapter);
        const scales = new Float32Array(length).fill(0.5);
        set(scales, Int32Array.from(good));
        set(scales, Int32Array.of(-1, -1, -1));
        set(undefined, undefined);
        assert.throws(() => set(scales, undefined), TypeError); // one without the other
        assert.throws(() => set(undefined, Int32Array.from(good)), TypeError);
        assert.throws(() => set(Array.from(scales), Int32Array.from(good)), TypeError);
        assert.throws(() => set(new Float64Array(length), Int32Array.from(good)), TypeError);
        assert.throws(() => set(scales, good.slice()), TypeError);
        assert.throws(() => set(scales, Int32Array.of(0, -1)), RangeError); // one entry per module
        assert.throws(() => set(scales, Int32Array.of(0, -1, -1, -1)), RangeError);
        assert.throws(() => set(scales, Int32Array.of(-2, -1, -1)), RangeError);
        assert.throws(() => set(scales, Int32Array.from(overflow)), /does not fit/);
        assert.throws(() => set(scales, Int32Array.of(-1, -1, 0)), /does not target/); // module 2 has rank 0
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const nonFinite = scales.slice();
          nonFinite[1] = bad;
          assert.throws(() => set(nonFinite, Int32Array.of(0, -1, -1)), /finite/);
        }
        // A value outside every module's vector is not checked.
        const unused = scales.slice();
        unused[length - 1] = Number.NaN;
        set(unused, Int32Array.of(0, -1, -1));
      });
  }

  test('a failed set leaves the slot as it was', () => {
    for (const kernels of [referenceLoraKernels, nativeLoraKernels]) {
      const bank = bankOf(kernels, [withVectors(r, adapter, { rank: [true, false, false] })], 3, 'f32');
      const bad = {
        ...adapter,
        rankScale: Float32Array.of(Number.NaN, 1, 1),
        offsetRankScale: Int32Array.of(0, -1, -1),
      };
      assert.throws(() => kernels.setLoraSlot(bank, 0, bad), RangeError);
      const y = applied(kernels, bank, Int32Array.of(0), r.f32(8), 8, new Float32Array(12), 12, [
        { module: 0, yOffset: 0, n: 12 },
      ]);
      assert.ok(y.every(Number.isFinite) && y.some((v) => v !== 0), 'the earlier adapter still applies');
    }
  });
});
