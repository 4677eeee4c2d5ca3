import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockManager } from '../../src/engine/kv/block-manager.ts';

test('grows a block table on demand and maps positions to cache rows', () => {
  const bm = new BlockManager(4, 16);
  const table: number[] = [];
  assert.ok(bm.grow(table, 1));
  assert.deepEqual(table, [0]);
  assert.ok(bm.grow(table, 16));
  assert.deepEqual(table, [0]);
  assert.ok(bm.grow(table, 17));
  assert.deepEqual(table, [0, 1]);
  assert.equal(bm.slotOf(table, 0), 0);
  assert.equal(bm.slotOf(table, 16), 16);
  assert.equal(bm.numFree, 2);
});

test('refuses to grow past the free blocks without changing anything', () => {
  const bm = new BlockManager(2, 4);
  const a: number[] = [];
  assert.ok(bm.grow(a, 5));
  const b: number[] = [];
  assert.equal(bm.grow(b, 5), false);
  assert.deepEqual(b, []);
  assert.equal(bm.numFree, 0);
});

test('release gives every block back', () => {
  const bm = new BlockManager(3, 2);
  const a: number[] = [];
  bm.grow(a, 6);
  bm.release(a);
  assert.equal(a.length, 0);
  assert.equal(bm.numFree, 3);
  const b: number[] = [];
  assert.ok(bm.grow(b, 6));
  assert.deepEqual([...b].sort(), [0, 1, 2]);
});
