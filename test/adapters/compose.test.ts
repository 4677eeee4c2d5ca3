/** compose.ts: a combination's packed factors carry exactly Σ w·s·B·A, and what cannot be combined is refused. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkParts, composePacked, compositionKey } from '../../src/adapters/compose.ts';
import type { PackedAdapter } from '../../src/kernels/types.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';

const K = [5, 4, 6];
const N = [3, 7, 2];

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** A packed adapter over three modules of shapes K×N, with the given ranks (0: not targeted). */
function packedOf(ranks: number[], scales: number[], seed: number): PackedAdapter {
  const rnd = seeded(seed);
  const count = ranks.length;
  const rank = Int32Array.from(ranks);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  let total = 0;
  for (let m = 0; m < count; m++) total += ranks[m] * (K[m] + N[m]);
  const weights = new Float32Array(total).map(() => rnd());
  let pos = 0;
  for (let m = 0; m < count; m++) {
    if (ranks[m] === 0) continue;
    offsetA[m] = pos;
    pos += ranks[m] * K[m];
    offsetB[m] = pos;
    pos += ranks[m] * N[m];
  }
  const scale = Float32Array.from(ranks.map((r, m) => (r ? scales[m] : 0)));
  return { weights, rank, offsetA, offsetB, scale, inFeatures: Int32Array.from(K), outFeatures: Int32Array.from(N) };
}

/** Module m's delta [N, K] = scale · Btᵀ · A, in f64. */
function delta(p: PackedAdapter, m: number): Float64Array {
  const out = new Float64Array(N[m] * K[m]);
  for (let j = 0; j < p.rank[m]; j++) {
    for (let n = 0; n < N[m]; n++) {
      const bt = p.weights[p.offsetB[m] + j * N[m] + n];
      for (let k = 0; k < K[m]; k++) out[n * K[m] + k] += p.scale[m] * bt * p.weights[p.offsetA[m] + j * K[m] + k];
    }
  }
  return out;
}

describe('composePacked', () => {
  const a = packedOf([2, 0, 3], [0.5, 0, 2], 1);
  const b = packedOf([4, 1, 0], [1.25, 8, 0], 2);
  const c = packedOf([1, 2, 2], [3, 0.1, 0.75], 3);
  const parts = [
    { packed: a, weight: 0.7, name: 'a' },
    { packed: b, weight: -1.5, name: 'b' },
    { packed: c, weight: 0.25, name: 'c' },
  ];

  test('ranks add and each module’s delta is Σ w·s·B·A (random factors)', () => {
    const mix = composePacked(parts, 64);
    assert.deepEqual([...mix.rank], [7, 3, 5]);
    for (let m = 0; m < 3; m++) {
      const got = delta(mix, m);
      const want = new Float64Array(got.length);
      for (const p of parts) {
        const d = delta(p.packed, m);
        for (let i = 0; i < d.length; i++) want[i] += p.weight * d[i];
      }
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-6, `module ${m} [${i}]`);
    }
  });

  test('one component at a weight scales its delta (per-request scale)', () => {
    const half = composePacked([{ packed: a, weight: 0.5, name: 'a' }], 64);
    for (const m of [0, 2]) {
      const want = delta(a, m);
      const got = delta(half, m);
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - 0.5 * want[i]) <= 1e-6);
    }
    assert.equal(half.rank[1], 0);
    assert.equal(half.scale[1], 0);
  });

  test('a total rank over the limit is a 400 naming lora', () => {
    assert.throws(
      () => composePacked(parts, 6),
      (e) =>
        isLoraplexError(e, 'REQUEST_INVALID') && e.param === 'lora' && /rank 7 .*--max-lora-rank 6/.test(e.message),
    );
  });

  test('a DoRA component is refused, saying why', () => {
    const dora = { ...a, outScale: new Float32Array(N[0]), offsetOutScale: Int32Array.from([0, -1, -1]) };
    assert.throws(
      () => composePacked([{ packed: dora, weight: 1, name: 'd' }, parts[1]], 64),
      (e) => isLoraplexError(e, 'REQUEST_INVALID') && /'d' is a DoRA adapter.*not linear/.test(e.message),
    );
  });
});

describe('parts and keys', () => {
  test('the key ignores order and tells weights apart', () => {
    const x = { key: 'sql@1', weight: 0.7 };
    const y = { key: 'chat@3', weight: 0.3 };
    assert.equal(compositionKey([x, y]), compositionKey([y, x]));
    assert.notEqual(compositionKey([x, y]), compositionKey([x, { ...y, weight: 0.30000000000000004 }]));
    assert.ok(compositionKey([x]).startsWith('(')); // never a real adapter's name@version
  });

  test('too many, repeated or non-finite parts are 400s naming the field', () => {
    const many = Array.from({ length: 9 }, (_, i) => ({ name: `a${i}`, weight: 1 }));
    const refused = (parts: { name: string; weight: number }[], param: string) =>
      assert.throws(
        () => checkParts(parts),
        (e) => isLoraplexError(e, 'REQUEST_INVALID') && e.param === param,
      );
    refused(many, 'lora');
    refused([], 'lora');
    refused([{ name: 'a', weight: Number.POSITIVE_INFINITY }], 'lora[0].scale');
    refused([{ name: 'a', weight: Number.NaN }], 'lora[0].scale');
    refused(
      [
        { name: 'a', weight: 1 },
        { name: 'a', weight: 2 },
      ],
      'lora[1].name',
    );
  });
});
