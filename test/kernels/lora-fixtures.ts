/** Fixtures shared by the LoRA kernel tests: random segment layouts and a relative-tolerance comparison. */
import assert from 'node:assert/strict';
import type { nativeLoraKernels } from '../../src/kernels/native/lora.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, PackedAdapter } from '../../src/kernels/types.ts';
import type { Rng } from './implementations.ts';

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
  const weights = new Float32Array(offset);
  let at = 0;
  for (const p of parts) {
    weights.set(p, at);
    at += p.length;
  }
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
