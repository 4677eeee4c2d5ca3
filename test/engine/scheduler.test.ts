import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockManager } from '../../src/engine/kv/block-manager.ts';
import { samplingParams } from '../../src/engine/sampling-params.ts';
import { Scheduler, type SlotProvider } from '../../src/engine/scheduler/scheduler.ts';
import { Sequence } from '../../src/engine/sequence.ts';

class FakeSlots implements SlotProvider {
  readonly pins = new Map<string, number>();
  constructor(private readonly capacity: number) {}
  isReady(_key: string): boolean {
    return true;
  }
  acquireSlot(adapter: string): number | null {
    if (!this.pins.has(adapter)) {
      if ([...this.pins.values()].filter((p) => p > 0).length >= this.capacity) return null;
      for (const [a, p] of this.pins) if (p === 0) this.pins.delete(a);
    }
    this.pins.set(adapter, (this.pins.get(adapter) ?? 0) + 1);
    return [...this.pins.keys()].indexOf(adapter);
  }
  releaseSlot(adapter: string) {
    this.pins.set(adapter, this.pins.get(adapter)! - 1);
  }
}

let nextId = 0;
function seq(promptLen: number, adapter: string | null = null, maxTokens = 8) {
  return new Sequence(
    nextId++,
    Array.from({ length: promptLen }, (_, i) => i),
    adapter,
    samplingParams({ maxTokens }),
  );
}

test('chunks prefill within the token budget and puts decodes first', () => {
  const s = new Scheduler({ maxBatchTokens: 10, maxRunningSeqs: 8 }, new BlockManager(64, 4), new FakeSlots(4));
  const a = seq(25);
  s.add(a);
  let plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => e.numTokens),
    [10],
  );
  a.numComputed += 10;
  const b = seq(3);
  s.add(b);
  plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [[a.id, 10]],
  );
  a.numComputed += 10;
  plan = s.schedule();
  // a has 5 left, b is admitted with the remaining 5-token budget
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [
      [a.id, 5],
      [b.id, 3],
    ],
  );
  a.numComputed += 5;
  b.numComputed += 3;
  a.outputIds.push(1);
  b.outputIds.push(1);
  plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => e.numTokens),
    [1, 1],
  );
});

test('a prefill allowance caps prompt tokens per step; every decode still runs', () => {
  const s = new Scheduler({ maxBatchTokens: 64, maxRunningSeqs: 8 }, new BlockManager(64, 4), new FakeSlots(4));
  const [d1, d2] = [seq(2), seq(2)];
  s.add(d1);
  s.add(d2);
  s.schedule();
  for (const d of [d1, d2]) {
    d.numComputed = 2;
    d.outputIds.push(1);
  }
  const long = seq(30);
  const waiting = seq(5);
  s.add(long);
  s.add(waiting);
  const asked: number[] = [];
  const allowance = (decodeRows: number) => {
    asked.push(decodeRows);
    return 12;
  };
  let plan = s.schedule(allowance);
  // two decodes, then 12 prompt tokens: the long prompt's first chunk; the other prompt waits
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [
      [d1.id, 1],
      [d2.id, 1],
      [long.id, 12],
    ],
  );
  assert.deepEqual(asked, [2]);
  long.numComputed += 12;
  for (const d of [d1, d2]) {
    d.numComputed += 1;
    d.outputIds.push(1);
  }
  plan = s.schedule(() => 20);
  // the running prompt continues (18 left, capped at 20), then 2 tokens of the waiting one
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [
      [d1.id, 1],
      [d2.id, 1],
      [long.id, 18],
      [waiting.id, 2],
    ],
  );
  // an allowance of 0 leaves prompts waiting, decodes go
  long.numComputed += 18;
  waiting.numComputed += 2;
  for (const d of [d1, d2, long]) {
    d.numComputed = d.numTokens;
    d.outputIds.push(1);
  }
  plan = s.schedule(() => 0);
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [
      [d1.id, 1],
      [d2.id, 1],
      [long.id, 1],
    ],
  );
});

test('caps running sequences', () => {
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 2 }, new BlockManager(64, 4), new FakeSlots(4));
  for (let i = 0; i < 3; i++) s.add(seq(2));
  const plan = s.schedule();
  assert.equal(plan.entries.length, 2);
  assert.equal(s.waiting.length, 1);
});

test('a sequence whose adapter cannot get a slot waits; later adapter sequences wait behind it, the base goes on', () => {
  const slots = new FakeSlots(1);
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 8 }, new BlockManager(64, 4), slots);
  const a = seq(2, 'x');
  const b = seq(2, 'y');
  const c = seq(2, null);
  const d = seq(2, 'x');
  for (const q of [a, b, c, d]) s.add(q);
  const plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => e.seq.id),
    [a.id, c.id],
    'd (x) is not admitted past y, so x can drain',
  );
  assert.deepEqual(s.waiting, [b, d]);
  s.finish(a);
  const next = s.schedule();
  assert.deepEqual(
    next.entries.map((e) => e.seq.id),
    [c.id, b.id],
    'c goes on; y gets the slot once x is unpinned; d waits behind y',
  );
});

test('admission is round-robin across adapters: a busy adapter cannot starve the others', () => {
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 4 }, new BlockManager(64, 4), new FakeSlots(4));
  const busy = Array.from({ length: 6 }, () => seq(2, 'busy'));
  for (const q of busy) s.add(q);
  const other = seq(2, 'other');
  const base = seq(2, null);
  s.add(other);
  s.add(base);
  const plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => e.seq.id),
    [busy[0].id, other.id, base.id, busy[1].id],
  );
});

test('a sequence whose adapter is still loading is passed over until it is ready', () => {
  class LoadingSlots extends FakeSlots {
    ready = new Set<string>();
    override isReady(key: string) {
      return this.ready.has(key);
    }
  }
  const slots = new LoadingSlots(4);
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 8 }, new BlockManager(64, 4), slots);
  const cold = seq(2, 'cold');
  const warm = seq(2, 'warm');
  slots.ready.add('warm');
  s.add(cold);
  s.add(warm);
  const first = s.schedule();
  assert.deepEqual(
    first.entries.map((e) => e.seq.id),
    [warm.id],
  );
  // The scheduler only reports what waits for a load; the engine requests it.
  assert.deepEqual(first.awaitingLoad, ['cold']);
  slots.ready.add('cold');
  assert.deepEqual(
    s.schedule().entries.map((e) => e.seq.id),
    [warm.id, cold.id],
  );
});

test('preempts the newest sequence when KV blocks run out, and recomputes it later', () => {
  const blocks = new BlockManager(3, 4);
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 8 }, blocks, new FakeSlots(4));
  const a = seq(4);
  const b = seq(4);
  s.add(a);
  s.add(b);
  let plan = s.schedule();
  assert.equal(plan.entries.length, 2);
  for (const e of plan.entries) {
    e.seq.numComputed += e.numTokens;
    e.seq.outputIds.push(7);
  }
  // both now need a second block for their 5th token; only one is free
  plan = s.schedule();
  assert.deepEqual(
    plan.preempted.map((q) => q.id),
    [b.id],
  );
  assert.equal(b.numComputed, 0);
  assert.equal(b.status, 'waiting');
  assert.equal(blocks.numFree, 1, 'a holds two blocks; b (needs two) waits');
  s.finish(a);
  plan = s.schedule();
  assert.deepEqual(
    plan.entries.map((e) => [e.seq.id, e.numTokens]),
    [[b.id, 5]],
  );
});

test('finish frees blocks and the adapter pin', () => {
  const blocks = new BlockManager(8, 4);
  const slots = new FakeSlots(2);
  const s = new Scheduler({ maxBatchTokens: 100, maxRunningSeqs: 8 }, blocks, slots);
  const a = seq(6, 'x');
  s.add(a);
  s.schedule();
  assert.equal(blocks.numFree, 6);
  s.finish(a);
  assert.equal(blocks.numFree, 8);
  assert.equal(slots.pins.get('x'), 0);
  assert.equal(a.status, 'finished');
});
