/** HostCache: the host tier's LRU, where entries the caller pins are never evicted. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HostCache } from '../../src/adapters/cache/host-cache.ts';
import type { PackedAdapter } from '../../src/kernels/types.ts';

/** A one-module adapter whose only weight is `value`, so entries can be told apart. */
function packed(value: number): PackedAdapter {
  return {
    weights: Float32Array.of(value, value),
    rank: Int32Array.of(1),
    offsetA: Int32Array.of(0),
    offsetB: Int32Array.of(1),
    scale: Float32Array.of(1),
    inFeatures: Int32Array.of(1),
    outFeatures: Int32Array.of(1),
  };
}

function filled(capacity: number, keys: string[]): HostCache {
  const cache = new HostCache(capacity);
  for (const [i, key] of keys.entries()) cache.put(key, packed(i));
  return cache;
}

const none = () => false;
const pinned =
  (...keys: string[]) =>
  (key: string) =>
    keys.includes(key);

describe('HostCache: capacity', () => {
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    test(`capacity ${bad} is refused`, () => {
      assert.throws(() => new HostCache(bad), RangeError);
    });
  }

  test('capacity 1 holds one entry', () => {
    const cache = filled(1, ['a']);
    assert.equal(cache.capacity, 1);
    assert.equal(cache.size, 1);
    assert.ok(cache.makeRoom(1, none));
    assert.equal(cache.size, 0);
  });
});

describe('HostCache: entries', () => {
  test('get returns what put stored, null for an unknown key', () => {
    const a = packed(7);
    const cache = new HostCache(2);
    cache.put('a@1', a);
    assert.equal(cache.get('a@1'), a);
    assert.equal(cache.get('b@1'), null);
    assert.ok(cache.has('a@1'));
    assert.ok(!cache.has('b@1'));
  });

  test('put of an existing key replaces its weights without growing', () => {
    const cache = filled(2, ['a']);
    const replacement = packed(9);
    cache.put('a', replacement);
    assert.equal(cache.size, 1);
    assert.equal(cache.get('a'), replacement);
  });

  test('delete says whether the key was there', () => {
    const cache = filled(2, ['a']);
    assert.equal(cache.delete('a'), true);
    assert.equal(cache.delete('a'), false);
    assert.equal(cache.size, 0);
  });

  test('put does not evict: only makeRoom does', () => {
    const cache = filled(2, ['a', 'b', 'c']);
    assert.equal(cache.size, 3);
    assert.deepEqual([...cache.keys()], ['a', 'b', 'c']);
  });
});

describe('HostCache: least recently used first', () => {
  test('keys() lists the oldest first', () => {
    assert.deepEqual([...filled(3, ['a', 'b', 'c']).keys()], ['a', 'b', 'c']);
  });

  test('get refreshes recency', () => {
    const cache = filled(3, ['a', 'b', 'c']);
    cache.get('a');
    assert.deepEqual([...cache.keys()], ['b', 'c', 'a']);
    assert.ok(cache.makeRoom(1, none));
    assert.deepEqual([...cache.keys()], ['c', 'a'], 'b, now the oldest, goes first');
  });

  test('put of an existing key refreshes recency', () => {
    const cache = filled(3, ['a', 'b', 'c']);
    cache.put('a', packed(5));
    assert.ok(cache.makeRoom(1, none));
    assert.deepEqual([...cache.keys()], ['c', 'a']);
  });

  test('has() does not refresh recency', () => {
    const cache = filled(2, ['a', 'b']);
    assert.ok(cache.has('a'));
    assert.ok(cache.makeRoom(1, none));
    assert.deepEqual([...cache.keys()], ['b']);
  });

  test('a get miss changes nothing', () => {
    const cache = filled(2, ['a', 'b']);
    cache.get('zzz');
    assert.deepEqual([...cache.keys()], ['a', 'b']);
  });
});

describe('HostCache: makeRoom', () => {
  test('with room to spare it evicts nothing', () => {
    const cache = filled(3, ['a', 'b']);
    assert.ok(cache.makeRoom(1, none));
    assert.deepEqual([...cache.keys()], ['a', 'b']);
  });

  test('evicts only as many entries as it needs, oldest first', () => {
    const cache = filled(4, ['a', 'b', 'c', 'd']);
    assert.ok(cache.makeRoom(2, none));
    assert.deepEqual([...cache.keys()], ['c', 'd']);
  });

  test('skips pinned entries and evicts the oldest unpinned ones', () => {
    const cache = filled(3, ['a', 'b', 'c']);
    assert.ok(cache.makeRoom(1, pinned('a')));
    assert.deepEqual([...cache.keys()], ['a', 'c']);
  });

  test('asks about entries without refreshing them', () => {
    const cache = filled(2, ['a', 'b']);
    const asked: string[] = [];
    assert.ok(
      cache.makeRoom(1, (key) => {
        asked.push(key);
        return key === 'a';
      }),
    );
    assert.deepEqual([...new Set(asked)], ['a', 'b']);
    assert.deepEqual([...cache.keys()], ['a']);
  });

  test('false when every entry is pinned, and nothing is evicted', () => {
    const cache = filled(2, ['a', 'b']);
    assert.equal(
      cache.makeRoom(1, () => true),
      false,
    );
    assert.deepEqual([...cache.keys()], ['a', 'b']);
  });

  test('false when the unpinned entries are not enough', () => {
    const cache = filled(3, ['a', 'b', 'c']);
    assert.equal(cache.makeRoom(2, pinned('a', 'c')), false);
    assert.ok(cache.has('a') && cache.has('c'), 'pinned entries stay');
  });

  test('more than the capacity never fits', () => {
    const cache = filled(2, ['a']);
    assert.equal(cache.makeRoom(3, none), false);
  });

  test('makeRoom(0) brings an over-full cache back to its capacity once entries are unpinned', () => {
    const cache = filled(2, ['a', 'b', 'c', 'd']);
    assert.ok(cache.makeRoom(0, pinned('a')));
    assert.deepEqual([...cache.keys()], ['a', 'd']);
  });

  test('an empty cache has room for its capacity', () => {
    const cache = new HostCache(3);
    assert.ok(cache.makeRoom(3, none));
    assert.equal(cache.makeRoom(4, none), false);
  });
});
