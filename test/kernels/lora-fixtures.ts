/** Fixtures shared by the LoRA kernel tests: random segment layouts and a relative-tolerance comparison. */
import assert from 'node:assert/strict';
import type { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import { type Rng, withThreads } from './implementations.ts';

/** Element-wise |actual − expected| ≤ tol · (1 + |expected|). */
export function close(actual: Float32Array, expected: Float32Array, what: string, tol = 2e-5) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= tol * (1 + Math.abs(expected[i])))) assert.fail(`${what}: element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Segments of random lengths (some empty) with random slots among -1 .. numSlots-1. */
export function randomSegments(r: Rng, rows: number, numSlots: number) {
  const starts = [0];
  const slots: number[] = [];
  while (starts[starts.length - 1] < rows) {
    const len = r.next() < 0.2 ? 0 : r.int(1, Math.max(1, Math.ceil(rows / 3)));
    starts.push(Math.min(rows, starts[starts.length - 1] + len));
    slots.push(r.int(-1, numSlots - 1));
  }
  return { segStart: Int32Array.from(starts), segSlot: Int32Array.from(slots), numSegments: slots.length };
}

/** The per-token slots of a segment layout (BGMV's input for the same rows). */
export function tokenSlotsOf(segStart: Int32Array, segSlot: Int32Array, numSegments: number) {
  const slots = new Int32Array(segStart[numSegments]);
  for (let s = 0; s < numSegments; s++) slots.fill(segSlot[s], segStart[s], segStart[s + 1]);
  return slots;
}

/** One adapter over modules of output sizes `ns` (all with input size k); rank[m] = 0 leaves m untargeted. */
export function makeAdapter(r: Rng, k: number, ns: number[], ranks: number[]): PackedAdapter {
  const parts: Float32Array[] = [r.f32(5)]; // leading elements, so offsets are not all zero
  let offset = 5;
  const offsetA = new Int32Array(ns.length);
  const offsetB = new Int32Array(ns.length);
  ns.forEach((n, m) => {
    if (ranks[m] === 0) return;
    offsetA[m] = offset;
    parts.push(r.f32(ranks[m] * k, 1 / Math.sqrt(k)));
    offset += ranks[m] * k;
    offsetB[m] = offset;
    parts.push(r.f32(ranks[m] * n, 1 / Math.sqrt(ranks[m])));
    offset += ranks[m] * n;
  });
  const weights = concatenated(parts, offset);
  return {
    weights,
    rank: Int32Array.from(ranks),
    offsetA,
    offsetB,
    scale: Float32Array.from(ns, () => 0.25 + r.next() * 2),
    inFeatures: Int32Array.from(ns, () => k),
    outFeatures: Int32Array.from(ns),
  };
}

/** The LoRA part of a Kernels implementation (native or reference). */
export type LoraKernels = typeof nativeLoraKernels;

/** A bank holding one adapter per slot, in order. */
export function bankOf(
  kernels: LoraKernels,
  adapters: PackedAdapter[],
  numModules: number,
  dtype: LoraDtype,
): LoraBank {
  const bank = kernels.createLoraBank(adapters.length, numModules, dtype);
  for (const [s, a] of adapters.entries()) kernels.setLoraSlot(bank, s, a);
  return bank;
}

/** applyAdapters on a copy of y0 with a fresh row layout of rowSlot. */
export function applied(
  kernels: LoraKernels,
  bank: LoraBank,
  rowSlot: Int32Array,
  x: Float32Array,
  k: number,
  y0: Float32Array,
  yStride: number,
  modules: LoraModuleOutput[],
): Float32Array {
  const rows = kernels.createLoraRows();
  kernels.setLoraRows(rows, rowSlot, rowSlot.length);
  const y = y0.slice();
  kernels.applyAdapters(bank, rows, x, k, { y, yStride, modules });
  return y;
}

/** Each row of a step applied alone on one thread (rows of k inputs, yStride outputs): the batch-invariance baseline. */
export function eachRowAlone(
  kernels: LoraKernels,
  bank: LoraBank,
  rowSlot: Int32Array,
  x: Float32Array,
  k: number,
  y0: Float32Array,
  yStride: number,
  modules: LoraModuleOutput[],
): Float32Array {
  const alone = y0.slice();
  withThreads(1, () => {
    for (let t = 0; t < rowSlot.length; t++) {
      const row = applied(
        kernels,
        bank,
        rowSlot.subarray(t, t + 1),
        x.subarray(t * k, (t + 1) * k),
        k,
        y0.subarray(t * yStride, (t + 1) * yStride),
        yStride,
        modules,
      );
      alone.set(row, t * yStride);
    }
  });
  return alone;
}

/**
 * Three modules of odd widths over K = 67, written out of module order, and three adapters whose ranks cover 1,
 * 128, an untargeted module and odd ranks: the random-layout case of each bank dtype's tests.
 */
export const ODD_LAYOUT = {
  k: 67,
  ns: [53, 21, 130],
  ranks: [
    [1, 128, 5],
    [16, 0, 7],
    [33, 8, 1],
  ],
  modules: [
    { module: 2, yOffset: 0, n: 130 },
    { module: 0, yOffset: 131, n: 53 },
    { module: 1, yOffset: 184, n: 21 },
  ] as LoraModuleOutput[],
  yStride: 205,
};

/**
 * One module, K = 1, rank 1, A = [1], x = 1, scale 1, y from 0, through a bank of `dtype`: y[n] = Bt[0, n] as the
 * bank stores it (16-bit banks: exactly; int8: through the row scales, one product each, the same on every ISA).
 */
export function throughOneRow(kernels: LoraKernels, dtype: LoraDtype, values: Float32Array): Float32Array {
  const n = values.length;
  const bank = kernels.createLoraBank(1, 1, dtype);
  kernels.setLoraSlot(bank, 0, {
    weights: Float32Array.of(1, ...values),
    rank: Int32Array.of(1),
    offsetA: Int32Array.of(0),
    offsetB: Int32Array.of(1),
    scale: Float32Array.of(1),
    inFeatures: Int32Array.of(1),
    outFeatures: Int32Array.of(n),
  });
  return applied(kernels, bank, Int32Array.of(0), Float32Array.of(1), 1, new Float32Array(n), n, [
    { module: 0, yOffset: 0, n },
  ]);
}

/**
 * A VeRA / Tied-LoRA style adapter over modules of output sizes `ns` (all with input size k): one A [rank, k]
 * shared by every targeted module and one Bt [rank, N] per distinct N, shared by the modules of that N.
 * targeted[m] false leaves m untargeted (rank 0).
 */
export function makeSharedAdapter(r: Rng, k: number, ns: number[], rank: number, targeted: boolean[]): PackedAdapter {
  const parts: Float32Array[] = [r.f32(3)]; // leading elements, so offsets are not all zero
  let offset = 3;
  const add = (values: Float32Array) => {
    parts.push(values);
    offset += values.length;
    return offset - values.length;
  };
  const sharedA = add(r.f32(rank * k, 1 / Math.sqrt(k)));
  const sharedB = new Map<number, number>();
  for (const n of ns) if (!sharedB.has(n)) sharedB.set(n, add(r.f32(rank * n, 1 / Math.sqrt(rank))));
  const weights = concatenated(parts, offset);
  return {
    weights,
    rank: Int32Array.from(ns, (_, m) => (targeted[m] ? rank : 0)),
    offsetA: Int32Array.from(ns, (_, m) => (targeted[m] ? sharedA : 0)),
    offsetB: Int32Array.from(ns, (n, m) => (targeted[m] ? sharedB.get(n)! : 0)),
    scale: Float32Array.from(ns, () => 0.25 + r.next() * 2),
    inFeatures: Int32Array.from(ns, () => k),
    outFeatures: Int32Array.from(ns),
  };
}

/** Which modules get which per-module vectors (a targeted module only). */
export interface VectorsOn {
  out?: boolean[]; // DoRA's output scale [N], around 1
  rank?: boolean[]; // VeRA's λd [rank], in ±[0.25, 1.75)
  column?: boolean[]; // VeRA's λb [N], in ±[0.25, 1.75)
}

/** The adapter with the vectors of `on` added, packed after one leading value each (offsets not all zero). */
export function withVectors(r: Rng, adapter: PackedAdapter, on: VectorsOn): PackedAdapter {
  const pack = (flags: boolean[] | undefined, length: (m: number) => number, value: () => number) => {
    if (!flags) return [undefined, undefined] as const;
    const offsets = new Int32Array(flags.length).fill(-1);
    const values: number[] = [0.5];
    flags.forEach((yes, m) => {
      if (!yes) return;
      offsets[m] = values.length;
      for (let i = 0; i < length(m); i++) values.push(value());
    });
    return [Float32Array.from(values), offsets] as const;
  };
  const signed = () => (r.next() < 0.5 ? -1 : 1) * (0.25 + 1.5 * r.next());
  const [outScale, offsetOutScale] = pack(
    on.out,
    (m) => adapter.outFeatures[m],
    () => 0.5 + r.next(),
  );
  const [rankScale, offsetRankScale] = pack(on.rank, (m) => adapter.rank[m], signed);
  const [columnScale, offsetColumnScale] = pack(on.column, (m) => adapter.outFeatures[m], signed);
  const out: PackedAdapter = { ...adapter };
  if (outScale) Object.assign(out, { outScale, offsetOutScale });
  if (rankScale) Object.assign(out, { rankScale, offsetRankScale });
  if (columnScale) Object.assign(out, { columnScale, offsetColumnScale });
  return out;
}

/** The parts one after another in one array of `length` elements. */
function concatenated(parts: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
