/**
 * The addon's Q4_K encoder (native/src/cpu/qgemm_encode.cpp, what --quantize q4_k runs at load where the addon is
 * built): byte for byte the TypeScript encoder (src/kernels/block-encode.ts's encodeQ4_K) on finite values of every
 * shape the grid search meets — Gaussian and uniform weights at several scales, blocks all positive or all
 * negative, constant, all zero, with signed zeros, one outlier, subnormal and huge magnitudes, and random mixes of
 * those — under every ISA here (AVX-512 runs a block's 8 sub-blocks in vector lanes; the others one at a time), and
 * on 1 thread as on the pool. Finite values only: a NaN's payload is the platform's.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { encodeQ4_K } from '../../src/kernels/block-encode.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeEncodeQ4K } from '../../src/kernels/native/qgemm.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { availableIsas, restoreDefaults, rng, withThreads } from './implementations.ts';

function assertSameBytes(got: Uint8Array | null, want: Uint8Array, what: string) {
  assert.ok(got, 'the addon encodes');
  assert.equal(got.length, want.length, `${what}: lengths`);
  for (let i = 0; i < want.length; i++)
    if (got[i] !== want[i]) assert.fail(`${what}: byte ${i} (block ${Math.floor(i / 144)}) ${got[i]} vs ${want[i]}`);
}

/** 256-value blocks, one per kind of content. */
function blocks(seed: number): Float32Array {
  const r = rng(seed);
  const kinds: Array<(i: number) => number> = [
    () => r.normal() * 0.02,
    () => r.normal() * 3,
    () => (r.next() * 2 - 1) * 1e-3,
    () => r.next() * 0.5, // all positive (the min clamps at 0)
    () => -r.next() * 0.5 - 0.1, // all negative
    () => 0.25, // constant
    () => 0, // all zero
    (i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? -0 : r.normal()), // signed zeros among values
    (i) => (i === 77 ? 50 : r.normal() * 0.01), // one outlier
    () => r.normal() * 1e-40, // subnormal f32
    () => r.normal() * 1e30, // huge
    (i) => (i < 128 ? r.normal() : 0), // half a block of zeros
    (i) => (i % 32 === 0 ? 1 : 0), // one value per sub-block
  ];
  const out = new Float32Array(kinds.length * 4 * 256);
  for (let b = 0; b < kinds.length * 4; b++)
    for (let i = 0; i < 256; i++) out[b * 256 + i] = kinds[b % kinds.length](i);
  return out;
}

/** Blocks whose 32-value sub-blocks each take one of the kinds above, at random. */
function mixedBlocks(seed: number, count: number): Float32Array {
  const pool = blocks(seed + 100);
  const r = rng(seed);
  const out = new Float32Array(count * 256);
  for (let sub = 0; sub < count * 8; sub++) {
    const from = r.int(0, pool.length / 32 - 1) * 32;
    out.set(pool.subarray(from, from + 32), sub * 32);
  }
  return out;
}

describe('Q4_K encoding in the addon', () => {
  after(restoreDefaults);
  for (const isa of availableIsas()) {
    test(`${isa}: equals the TypeScript encoder byte for byte`, () => {
      setIsa(isa);
      for (const seed of [1, 2, 3]) {
        const values = blocks(seed);
        assertSameBytes(nativeEncodeQ4K(values), encodeQ4_K(values), `seed ${seed}`);
      }
      const mixed = mixedBlocks(4, 512);
      assertSameBytes(nativeEncodeQ4K(mixed), encodeQ4_K(mixed), 'mixed sub-blocks');
      restoreDefaults();
    });
  }

  test('a weight matrix of many blocks: the pool and one thread, and weight-format encodes through it', () => {
    const r = rng(9);
    const values = Float32Array.from({ length: 64 * 1024 }, () => r.normal() * 0.05);
    const want = encodeQ4_K(values);
    assertSameBytes(nativeEncodeQ4K(values), want, 'pool');
    assertSameBytes(
      withThreads(1, () => nativeEncodeQ4K(values)),
      want,
      '1 thread',
    );
    assertSameBytes(weightFormat('q4_k').encode(values, 64, 1024).data as Uint8Array, want, 'weightFormat');
  });
});
