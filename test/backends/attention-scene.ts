/**
 * Two steps of attention work for the conformance suite: step 1 prefills three sequences (A 7 tokens, B 10,
 * C 3); step 2 runs a prefill chunk of A (5 tokens over its 7 cached), B's decode, a whole new prompt D (4)
 * and C's decode. Blocks are shuffled, so each sequence's cache rows are scattered.
 */
import type { StepInputs } from '../../src/backends/types.ts';
import type { AttentionShape } from '../../src/kernels/types.ts';
import type { Rng } from '../kernels/implementations.ts';

interface Part {
  seq: number;
  from: number; // first position this step
  count: number; // queries this step
}

export const SCENE_STEPS: Part[][] = [
  [
    { seq: 0, from: 0, count: 7 },
    { seq: 1, from: 0, count: 10 },
    { seq: 2, from: 0, count: 3 },
  ],
  [
    { seq: 0, from: 7, count: 5 },
    { seq: 1, from: 10, count: 1 },
    { seq: 3, from: 0, count: 4 },
    { seq: 2, from: 3, count: 1 },
  ],
];

const MAX_TOKENS = [12, 11, 4, 4]; // per sequence, after both steps

export interface Scene {
  numBlocks: number;
  steps: StepInputs[];
}

/** Block tables over shuffled blocks (two spare) and the two steps' plans. */
export function makeScene(r: Rng, shape: AttentionShape): Scene {
  const bs = shape.blockSize;
  const needed = MAX_TOKENS.map((n) => Math.ceil(n / bs));
  const numBlocks = needed.reduce((a, b) => a + b, 0) + 2;
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const tables: number[][] = [];
  let next = 0;
  for (const n of needed) {
    tables.push(ids.slice(next, next + n));
    next += n;
  }
  const steps = SCENE_STEPS.map((parts) => {
    const positions: number[] = [];
    const slots: number[] = [];
    const qStart = [0];
    const flat: number[] = [];
    const blockTableStart: number[] = [];
    for (const p of parts) {
      for (let pos = p.from; pos < p.from + p.count; pos++) {
        positions.push(pos);
        slots.push(tables[p.seq][Math.floor(pos / bs)] * bs + (pos % bs));
      }
      qStart.push(positions.length);
      blockTableStart.push(flat.length);
      flat.push(...tables[p.seq]);
    }
    const n = positions.length;
    return {
      numTokens: n,
      tokens: new Int32Array(n),
      positions: Int32Array.from(positions),
      slotMapping: Int32Array.from(slots),
      attention: {
        qStart: Int32Array.from(qStart),
        kvLen: Int32Array.from(parts, (p) => p.from + p.count),
        blockTables: Int32Array.from(flat),
        blockTableStart: Int32Array.from(blockTableStart),
        numSeqs: parts.length,
      },
      rowSlot: new Int32Array(n).fill(-1),
      logitRows: new Int32Array(0),
    };
  });
  return { numBlocks, steps };
}

/** RoPE frequencies over the rotated dims: base^(-2i/R), i < R/2. */
export function invFreqOf(shape: AttentionShape, base = 10000): Float32Array {
  const rotary = shape.rotaryDim ?? shape.headDim;
  return Float32Array.from({ length: rotary / 2 }, (_, i) => base ** (-(2 * i) / rotary));
}
