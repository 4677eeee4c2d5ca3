/**
 * Embedding rows from Q8_0 / Q4_K / Q6_K blocks: every native ISA equals the reference bit for bit, and both equal
 * the rows of the table decoded by the GGUF dequantizers (weightFormat(type).decode), on odd vocabularies,
 * one token, no tokens, repeated ids, quantized tables and random raw blocks; ids outside the table throw.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToF16 } from '../../src/kernels/dtype.ts';
import type { BlockDType, Kernels, WeightMatrix } from '../../src/kernels/types.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { assertBitwise, nativeImplementations, referenceKernels, restoreDefaults, rng } from './implementations.ts';

const BLOCK: Record<BlockDType, number> = { q8_0: 32, q4_k: 256, q6_k: 256 };
/** Where each block keeps its f16 scales. */
const HALVES: Record<BlockDType, number[]> = { q8_0: [0], q4_k: [0, 2], q6_k: [208] };

function rawTable(type: BlockDType, vocab: number, dim: number, seed: number): WeightMatrix {
  const r = rng(seed);
  const format = weightFormat(type);
  const data = new Uint8Array(format.bytes(vocab, dim));
  for (let i = 0; i < data.length; i++) data[i] = r.int(0, 255);
  for (let at = 0; at < data.length; at += format.blockBytes) {
    for (const off of HALVES[type]) {
      const bits = f32ToF16((r.next() * 2 - 1) * 0.05);
      data[at + off] = bits & 0xff;
      data[at + off + 1] = bits >> 8;
    }
  }
  return { dtype: type, rows: vocab, cols: dim, data };
}

function lookup(kernels: Kernels, table: WeightMatrix, ids: number[]): Float32Array {
  const out = new Float32Array(ids.length * table.cols).fill(Number.NaN);
  kernels.embedding(Int32Array.from(ids), table, out, ids.length);
  return out;
}

describe('embedding rows from blocks', () => {
  after(restoreDefaults);
  for (const type of ['q8_0', 'q4_k', 'q6_k'] as const) {
    for (const [vocab, blocks, ids] of [
      [1, 1, [0]],
      [37, 3, [36, 0, 5, 5, 17]],
      [101, 2, []],
      [9, 1, [8]],
    ] as const) {
      const dim = blocks * BLOCK[type];
      test(`${type} vocab ${vocab} dim ${dim}, ${ids.length} tokens`, () => {
        const r = rng(vocab * 7 + dim);
        for (const table of [
          weightFormat(type).encode(r.f32(vocab * dim, 0.7), vocab, dim),
          rawTable(type, vocab, dim, vocab + dim),
        ]) {
          const decoded = weightFormat(type).decode(table);
          const want = new Float32Array(ids.length * dim);
          for (const [t, id] of ids.entries()) want.set(decoded.subarray(id * dim, (id + 1) * dim), t * dim);
          assertBitwise(lookup(referenceKernels, table, [...ids]), want, 'reference vs decoded rows');
          for (const impl of nativeImplementations()) {
            impl.activate();
            assertBitwise(lookup(impl.kernels, table, [...ids]), want, impl.name);
          }
        }
      });
    }
  }

  test('ids outside the table and rows that are not whole blocks are refused', () => {
    const table = weightFormat('q8_0').encode(new Float32Array(3 * 64), 3, 64);
    for (const kernels of [referenceKernels, nativeImplementations()[0].kernels]) {
      assert.throws(() => lookup(kernels, table, [3]), /outside the embedding table/, kernels.name);
      assert.throws(() => lookup(kernels, table, [-1]), /outside the embedding table/, kernels.name);
      assert.throws(() => lookup(kernels, { ...table, cols: 48 }, [0]), TypeError, kernels.name);
    }
  });
});
