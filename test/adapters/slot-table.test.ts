/** Kernel slots: a copy into a slot that throws leaves that slot empty and reusable, and the table consistent. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SlotTable } from '../../src/adapters/cache/slot-table.ts';
import type { Kernels, PackedAdapter } from '../../src/kernels/types.ts';

function fakeKernels(failFor: Set<PackedAdapter>) {
  const slots = new Map<number, PackedAdapter | null>();
  const kernels = {
    createLoraBank: () => ({}),
    setLoraSlot: (_bank: unknown, slot: number, packed: PackedAdapter) => {
      slots.set(slot, packed);
      if (failFor.has(packed)) throw new Error('copy failed half-way');
    },
    clearLoraSlot: (_bank: unknown, slot: number) => {
      slots.set(slot, null);
    },
  } as unknown as Kernels;
  return { kernels, slots };
}

const packed = () => ({}) as PackedAdapter;

test('a failed copy leaves the slot empty; the displaced adapter is told; the slot is reused later', () => {
  const a = packed();
  const bad = packed();
  const c = packed();
  const { kernels, slots } = fakeKernels(new Set([bad]));
  const displaced: string[] = [];
  const table = new SlotTable(kernels, 1, 7, 'f32', (key) => displaced.push(key));
  assert.equal(
    table.acquire('a@1', () => a),
    0,
  );
  table.release('a@1');
  assert.throws(() => table.acquire('bad@1', () => bad), /half-way/);
  assert.deepEqual(displaced, ['a@1'], 'a lost its slot (its weights were overwritten)');
  assert.equal(table.has('a@1'), false);
  assert.equal(table.has('bad@1'), false);
  assert.equal(slots.get(0), null, 'nothing half-copied is left in the slot');
  assert.equal(
    table.acquire('c@1', () => c),
    0,
    'the slot is free for the next adapter',
  );
  assert.equal(table.pinned(), 1);
  table.release('c@1');
  assert.equal(
    table.acquire('a@1', () => a),
    0,
    'a comes back through a fresh copy',
  );
});
