/** Fixtures shared by the LoRA kernel tests: random segment layouts and a relative-tolerance comparison. */
import assert from 'node:assert/strict';
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
