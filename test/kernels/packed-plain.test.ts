/**
 * plainPacked (what the CUDA bank and composition take): a shared-factor adapter with rank and column scales,
 * folded into per-module factors, computes the same delta (within f32 rounding) through the reference kernels,
 * next to its DoRA output scales; an adapter without vectors comes back as itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plainPacked } from '../../src/kernels/packed-plain.ts';
import { referenceLoraKernels as reference } from '../../src/kernels/reference/lora.ts';
import type { LoraModuleOutput } from '../../src/kernels/types.ts';
import { rng } from './implementations.ts';
import { applied, bankOf, close, makeAdapter, makeSharedAdapter, withVectors } from './lora-fixtures.ts';

const K = 45;
const NS = [33, 17, 33];
const MODULES: LoraModuleOutput[] = [
  { module: 0, yOffset: 0, n: 33 },
  { module: 1, yOffset: 33, n: 17 },
  { module: 2, yOffset: 50, n: 33 },
];
const Y_STRIDE = 83;

test('plainPacked: the folded factors give the vectored delta; shared regions become per-module copies', () => {
  const r = rng(71);
  for (const rank of [1, 7, 16]) {
    const shared = makeSharedAdapter(r, K, NS, rank, [true, true, false]);
    const vectored = withVectors(r, shared, { rank: [true, false, false], column: [true, true, false] });
    const plain = plainPacked(vectored);
    assert.equal(plain.offsetRankScale, undefined);
    assert.equal(plain.offsetColumnScale, undefined);
    assert.notEqual(plain.offsetA[0], plain.offsetA[1], 'each module its own A');
    assert.equal(plain.weights.length, rank * (K + NS[0]) + rank * (K + NS[1]));
    const rows = 3;
    const x = r.f32(rows * K);
    const y0 = r.f32(rows * Y_STRIDE);
    const rowSlot = Int32Array.from([0, -1, 0]);
    const got = applied(reference, bankOf(reference, [plain], 3, 'f32'), rowSlot, x, K, y0, Y_STRIDE, MODULES);
    const want = applied(reference, bankOf(reference, [vectored], 3, 'f32'), rowSlot, x, K, y0, Y_STRIDE, MODULES);
    close(got, want, `rank ${rank}`, 1e-5);
  }
});

test('plainPacked: an adapter without rank or column scales is returned as it is', () => {
  const r = rng(5);
  const plain = makeAdapter(r, K, NS, [2, 0, 3]);
  assert.equal(plainPacked(plain), plain);
  const dora = withVectors(r, plain, { out: [true, false, true] });
  assert.equal(plainPacked(dora), dora);
});
