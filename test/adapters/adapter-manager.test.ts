/**
 * AdapterManager: catalogue, host tier and kernel slots, driven through a fake loader whose loads the test
 * settles by hand, so every interleaving is deterministic. Slot contents are read back through the
 * reference kernels' applyAdapters: each test adapter's single module turns x = [1, 0] into y = [v, v].
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AdapterManager,
  type AdapterManagerOptions,
  type StoreEntry,
} from '../../src/adapters/cache/adapter-manager.ts';
import type { AdapterLoader } from '../../src/adapters/loader/adapter-loader.ts';
import type { AdapterSummary, PackedWithSummary } from '../../src/adapters/loader/load-packed.ts';
import { getKernels } from '../../src/kernels/index.ts';
import type { PackedAdapter } from '../../src/kernels/types.ts';
import type { ModuleKind } from '../../src/model/modules.ts';
import { createError, type LoraplexError } from '../../src/observability/errors.ts';
import { assertRejects, assertThrows } from './helpers.ts';

const kernels = getKernels('reference');

/** One module, rank 1, K = N = 2: A = [v, 0], Bt = [1, 1], so (x = [1, 0]) ↦ y = [v, v]. */
function packed(value: number): PackedAdapter {
  return {
    weights: Float32Array.of(value, 0, 1, 1),
    rank: Int32Array.of(1),
    offsetA: Int32Array.of(0),
    offsetB: Int32Array.of(2),
    scale: Float32Array.of(1),
    inFeatures: Int32Array.of(2),
    outFeatures: Int32Array.of(2),
  };
}

function summary(rank = 1, targets: ModuleKind[] = ['q_proj']): AdapterSummary {
  return { rank, targets, sizeBytes: 16, warnings: [] };
}

const loaded = (value: number, rank = 1, targets: ModuleKind[] = ['q_proj']): PackedWithSummary => ({
  packed: packed(value),
  summary: summary(rank, targets),
});

const brokenConfig = (name: string) =>
  createError('ADAPTER_INVALID_CONFIG', { file: `/store/${name}/adapter_config.json`, problem: 'not valid JSON' });

interface PendingLoad {
  name: string;
  dir: string;
  settled: boolean;
  resolve(result: PackedWithSummary): void;
  reject(error: LoraplexError): void;
}

/** Records every load and leaves it pending until the test resolves or rejects it. */
class FakeLoader implements AdapterLoader {
  readonly calls: PendingLoad[] = [];
  closed = false;

  load(name: string, dir: string): Promise<PackedWithSummary> {
    return new Promise((resolve, reject) => {
      const call: PendingLoad = {
        name,
        dir,
        settled: false,
        resolve: (r) => {
          call.settled = true;
          resolve(r);
        },
        reject: (e) => {
          call.settled = true;
          reject(e);
        },
      };
      this.calls.push(call);
    });
  }

  async close() {
    this.closed = true;
  }

  names(): string[] {
    return this.calls.map((c) => c.name);
  }

  /** The one unsettled load of `name`. */
  pending(name: string): PendingLoad {
    const open = this.calls.filter((c) => c.name === name && !c.settled);
    assert.equal(open.length, 1, `expected one pending load of '${name}', found ${open.length}`);
    return open[0];
  }
}

/** Lets the manager's promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function finishLoad(loader: FakeLoader, name: string, value: number, rank = 1, targets?: ModuleKind[]) {
  loader.pending(name).resolve(loaded(value, rank, targets));
  await settle();
}

async function failLoad(loader: FakeLoader, name: string, error: LoraplexError) {
  loader.pending(name).reject(error);
  await settle();
}

function setup(opts: Partial<AdapterManagerOptions> = {}) {
  const loader = new FakeLoader();
  const manager = new AdapterManager({
    backend: kernels,
    numModules: 1,
    loraDtype: 'f32',
    maxLoras: 2,
    maxCpuLoras: 4,
    loader,
    ...opts,
  });
  const ready: string[] = [];
  const failed: [string, LoraplexError][] = [];
  const timed: [string, number, boolean][] = [];
  manager.events = {
    ready: (key) => ready.push(key),
    failed: (key, error) => failed.push([key, error]),
    loadTimed: (name, seconds, ok) => timed.push([name, seconds, ok]),
  };
  return { manager, loader, ready, failed, timed };
}

const store = (...names: string[]): StoreEntry[] =>
  names.map((name) => ({ name, dir: `/store/${name}`, fingerprint: '1' }));

/** What the kernel slot computes for x = [1, 0]: the adapter's value v, null for an empty (cleared) slot. */
function slotValue(manager: AdapterManager, slot: number): number | null {
  const y = new Float32Array(2);
  const rows = kernels.createLoraRows();
  kernels.setLoraRows(rows, Int32Array.of(slot), 1);
  try {
    kernels.applyAdapters(manager.slots.bank, rows, Float32Array.of(1, 0), 2, {
      y,
      yStride: 2,
      modules: [{ module: 0, yOffset: 0, n: 2 }],
    });
  } catch (e) {
    if (e instanceof RangeError && /is empty/.test(e.message)) return null;
    throw e;
  }
  assert.equal(y[0], y[1]);
  return y[0];
}

const tierOf = (manager: AdapterManager, name: string) => manager.list().find((a) => a.name === name)?.tier;

describe('AdapterManager: construction', () => {
  test('max CPU LoRAs below max LoRAs is refused', () => {
    assert.throws(() => setup({ maxLoras: 3, maxCpuLoras: 2 }), RangeError);
  });

  test('starts empty', () => {
    const { manager } = setup();
    assert.deepEqual(manager.names(), []);
    assert.deepEqual(manager.stats(), { slotsUsed: 0, slotsTotal: 2, hostUsed: 0, hostTotal: 4, loading: 0 });
  });

  test('close() closes the loader', async () => {
    const { manager, loader } = setup();
    await manager.close();
    assert.ok(loader.closed);
  });
});

describe('AdapterManager: loads', () => {
  test('concurrent retains of one cold adapter share one load', async () => {
    const { manager, loader, ready, timed } = setup();
    manager.syncStore(store('a'));
    const key = manager.resolve('a');
    assert.equal(key, 'a@1');
    assert.equal(tierOf(manager, 'a'), 'disk');

    manager.retain(key);
    manager.retain(key);
    assert.equal(manager.isReady(key), false);
    manager.retain(key);
    assert.equal(manager.isReady(key), false);
    assert.deepEqual(loader.names(), ['a']);
    assert.equal(loader.calls[0].dir, '/store/a');
    assert.equal(tierOf(manager, 'a'), 'loading');
    assert.equal(manager.stats().loading, 1);
    assert.deepEqual(ready, []);

    await finishLoad(loader, 'a', 1);
    assert.equal(manager.isReady(key), true);
    assert.equal(loader.calls.length, 1, 'no second load');
    assert.deepEqual(ready, [key]);
    assert.equal(timed.length, 1);
    assert.equal(timed[0][0], 'a');
    assert.ok(timed[0][1] >= 0 && Number.isFinite(timed[0][1]));
    assert.equal(timed[0][2], true);
    assert.equal(tierOf(manager, 'a'), 'host');
    assert.deepEqual(manager.stats(), { slotsUsed: 0, slotsTotal: 2, hostUsed: 1, hostTotal: 4, loading: 0 });
  });

  test('isReady is a query; requestLoad starts the load, once', async () => {
    const { manager, loader, ready } = setup();
    manager.syncStore(store('a'));
    assert.equal(manager.isReady('a@1'), false);
    assert.deepEqual(loader.calls, []);
    manager.requestLoad('a@1');
    manager.requestLoad('a@1');
    assert.equal(manager.isReady('a@1'), false);
    assert.deepEqual(loader.names(), ['a']);
    await finishLoad(loader, 'a', 1);
    assert.ok(manager.isReady('a@1'));
    assert.deepEqual(ready, ['a@1']);
  });

  test('an unknown or stale key is never ready and starts no load', () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    for (const key of ['nope@1', 'a@7']) {
      manager.requestLoad(key);
      assert.equal(manager.isReady(key), false);
    }
    assert.deepEqual(loader.calls, []);
  });

  test('an adapter handed over in memory is ready at once and never loaded', () => {
    const { manager, loader } = setup();
    manager.addResident('mem', packed(3), summary(2, ['v_proj']));
    const key = manager.resolve('mem');
    assert.ok(manager.isReady(key));
    manager.retain(key);
    const slot = manager.acquireSlot(key);
    assert.notEqual(slot, null);
    assert.equal(slotValue(manager, slot!), 3);
    assert.deepEqual(loader.calls, []);
    const info = manager.list()[0];
    assert.equal(info.origin, 'memory');
    assert.equal(info.rank, 2);
    assert.deepEqual(info.targets, ['v_proj']);
  });

  test('without a loader, a store adapter cannot be loaded', () => {
    const { manager } = setup({ loader: null });
    manager.syncStore(store('a'));
    assert.throws(() => manager.requestLoad('a@1'), /no adapter loader/);
  });

  test('release more often than retain throws', () => {
    const { manager } = setup();
    manager.addResident('mem', packed(1));
    assert.throws(() => manager.release('mem@1'), /released more often than retained/);
  });
});

describe('AdapterManager: host capacity', () => {
  test('a load waits while every host entry is pinned, and starts when one is released', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b', 'c'));
    for (const key of ['a@1', 'b@1', 'c@1']) manager.retain(key);
    assert.deepEqual(loader.names(), ['a', 'b'], 'two loads fill the host tier');
    assert.equal(manager.stats().loading, 2);

    await finishLoad(loader, 'a', 1);
    await finishLoad(loader, 'b', 2);
    assert.equal(manager.isReady('c@1'), false);
    assert.deepEqual(loader.names(), ['a', 'b'], 'c still waits: a and b are pinned');
    assert.equal(tierOf(manager, 'c'), 'disk');

    manager.release('a@1');
    assert.deepEqual(loader.names(), ['a', 'b', 'c']);
    assert.equal(tierOf(manager, 'a'), 'disk', 'a, unpinned, made room');
    await finishLoad(loader, 'c', 3);
    assert.ok(manager.isReady('c@1'));
    assert.ok(manager.isReady('b@1'));
    assert.deepEqual(manager.stats(), { slotsUsed: 0, slotsTotal: 1, hostUsed: 2, hostTotal: 2, loading: 0 });
  });

  test('waiting loads start in the order they were asked for', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 1 });
    manager.syncStore(store('a', 'b', 'c'));
    for (const key of ['a@1', 'b@1', 'c@1']) manager.retain(key);
    assert.deepEqual(loader.names(), ['a']);
    await finishLoad(loader, 'a', 1);
    manager.release('a@1');
    assert.deepEqual(loader.names(), ['a', 'b']);
    await finishLoad(loader, 'b', 2);
    manager.release('b@1');
    assert.deepEqual(loader.names(), ['a', 'b', 'c']);
  });

  test('a failed load frees its room for a waiting one', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b', 'c'));
    for (const key of ['a@1', 'b@1', 'c@1']) manager.retain(key);
    assert.deepEqual(loader.names(), ['a', 'b']);
    await failLoad(loader, 'a', brokenConfig('a'));
    assert.deepEqual(loader.names(), ['a', 'b', 'c']);
  });

  test('a waiting load whose sequence went away is dropped', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 1 });
    manager.syncStore(store('a', 'b'));
    manager.retain('a@1');
    manager.retain('b@1');
    manager.release('b@1'); // aborted while waiting for room
    await finishLoad(loader, 'a', 1);
    manager.release('a@1');
    assert.deepEqual(loader.names(), ['a']);
  });

  test('unpinned host entries are evicted least recently used first', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b', 'c', 'd'));
    for (const [name, value] of [
      ['a', 1],
      ['b', 2],
    ] as const) {
      manager.retain(`${name}@1`);
      await finishLoad(loader, name, value);
      manager.release(`${name}@1`);
    }
    // a runs once more (copied from the host into the slot): b is now the least recently used.
    assert.equal(manager.acquireSlot('a@1'), 0);
    manager.releaseSlot('a@1');

    manager.retain('c@1');
    assert.equal(tierOf(manager, 'b'), 'disk', 'b evicted');
    assert.equal(tierOf(manager, 'a'), 'slot');
    await finishLoad(loader, 'c', 3);

    // d needs room too: a's host copy goes, but a still holds its kernel slot.
    manager.release('c@1');
    manager.retain('d@1');
    assert.deepEqual(loader.names(), ['a', 'b', 'c', 'd']);
    await finishLoad(loader, 'd', 4);
    assert.equal(manager.stats().hostUsed, 2);
    assert.equal(manager.isReady('a@1'), true, 'a is still in its slot');
    assert.equal(tierOf(manager, 'a'), 'slot');
    manager.retain('a@1');
    assert.equal(manager.acquireSlot('a@1'), 0);
    assert.equal(slotValue(manager, 0), 1);
    assert.deepEqual(loader.names(), ['a', 'b', 'c', 'd'], 'a was not loaded again');
    manager.releaseSlot('a@1');
    manager.release('a@1');

    // b was evicted from every tier: it loads again.
    manager.retain('b@1');
    assert.deepEqual(loader.names(), ['a', 'b', 'c', 'd', 'b']);
  });

  test('adapters handed over in memory are never evicted, and take no host-cache room', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 1 });
    manager.addResident('mem', packed(9));
    manager.syncStore(store('a', 'b'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1);
    manager.release('a@1');
    manager.retain('b@1');
    assert.deepEqual(loader.names(), ['a', 'b']);
    assert.equal(tierOf(manager, 'a'), 'disk', 'a went, not mem');
    assert.equal(tierOf(manager, 'mem'), 'host');
  });
});

describe('AdapterManager: slots', () => {
  test('null when every slot is pinned; a released slot is reused', () => {
    const { manager } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.addResident('a', packed(1));
    manager.addResident('b', packed(2));
    assert.equal(manager.acquireSlot('a@1'), 0);
    assert.equal(slotValue(manager, 0), 1);
    assert.equal(manager.acquireSlot('b@1'), null);
    assert.equal(manager.stats().slotsUsed, 1);
    manager.releaseSlot('a@1');
    assert.equal(manager.acquireSlot('b@1'), 0);
    assert.equal(slotValue(manager, 0), 2);
    assert.equal(tierOf(manager, 'a'), 'host');
    assert.equal(tierOf(manager, 'b'), 'slot');
  });

  test('one adapter shares its slot and stays pinned until every user releases it', () => {
    const { manager } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.addResident('a', packed(1));
    manager.addResident('b', packed(2));
    assert.equal(manager.acquireSlot('a@1'), 0);
    assert.equal(manager.acquireSlot('a@1'), 0);
    assert.equal(manager.slots.loads, 1, 'copied into the slot once');
    manager.releaseSlot('a@1');
    assert.equal(manager.acquireSlot('b@1'), null, 'a still has a user');
    manager.releaseSlot('a@1');
    assert.equal(manager.acquireSlot('b@1'), 0);
  });

  test('null for weights that are not resident, and the slots are left alone', () => {
    const { manager } = setup({ maxLoras: 1 });
    manager.addResident('mem', packed(5));
    assert.equal(manager.acquireSlot('mem@1'), 0);
    manager.releaseSlot('mem@1');
    manager.syncStore(store('a'));
    assert.equal(manager.acquireSlot('a@1'), null, 'a is still on disk');
    assert.equal(manager.acquireSlot('nope@1'), null, 'unknown key');
    assert.equal(slotValue(manager, 0), 5, 'mem still in its slot');
    assert.equal(manager.slots.loads, 1);
  });

  test('free slots are used before an occupied one is reused', () => {
    const { manager } = setup({ maxLoras: 2 });
    manager.addResident('a', packed(1));
    manager.addResident('b', packed(2));
    assert.equal(manager.acquireSlot('a@1'), 0);
    manager.releaseSlot('a@1');
    assert.equal(manager.acquireSlot('b@1'), 1);
    assert.equal(manager.stats().slotsUsed, 2);
  });

  test('releaseSlot of a key holding no slot throws', () => {
    const { manager } = setup();
    manager.addResident('a', packed(1));
    assert.throws(() => manager.releaseSlot('a@1'), /holds no slot/);
  });
});

describe('AdapterManager: versions', () => {
  test('register loads now and serves the adapter from the host tier', async () => {
    const { manager, loader, timed } = setup();
    const registering = manager.register('a', '/adapters/a', 'api');
    assert.deepEqual(loader.names(), ['a']);
    assert.equal(manager.has('a'), false, 'not served before it loaded');
    loader.pending('a').resolve(loaded(1, 4, ['q_proj', 'v_proj']));
    const info = await registering;
    assert.equal(info.name, 'a');
    assert.equal(info.version, 1);
    assert.equal(info.origin, 'api');
    assert.equal(info.tier, 'host');
    assert.equal(info.rank, 4);
    assert.deepEqual(info.targets, ['q_proj', 'v_proj']);
    assert.equal(manager.resolve('a'), 'a@1');
    assert.ok(manager.isReady('a@1'));
    assert.equal(loader.calls.length, 1);
    assert.deepEqual(
      timed.map(([name, , ok]) => [name, ok]),
      [['a', true]],
    );
  });

  test('a replaced adapter keeps serving its old version to the sequences that hold it', async () => {
    const { manager, loader } = setup({ maxLoras: 2, maxCpuLoras: 4 });
    const first = manager.register('a', '/adapters/a-v1', 'api');
    loader.pending('a').resolve(loaded(1));
    await first;
    const old = manager.resolve('a');
    manager.retain(old); // a sequence admitted with version 1
    const oldSlot = manager.acquireSlot(old);
    assert.equal(oldSlot, 0);

    const second = manager.register('a', '/adapters/a-v2', 'api', { replace: true });
    loader.pending('a').resolve(loaded(2));
    const info = await second;
    assert.equal(info.version, 2);
    const current = manager.resolve('a');
    assert.equal(current, 'a@2');
    assert.notEqual(current, old);
    assert.deepEqual(manager.names(), ['a']);
    assert.equal(manager.list()[0].version, 2);

    // The old version still works for its sequence: ready, its slot, its weights.
    assert.ok(manager.isReady(old));
    assert.equal(manager.acquireSlot(old), oldSlot);
    assert.equal(slotValue(manager, oldSlot!), 1);
    manager.releaseSlot(old);

    // The new version gets its own slot and weights.
    manager.retain(current);
    const newSlot = manager.acquireSlot(current);
    assert.equal(newSlot, 1);
    assert.equal(slotValue(manager, newSlot!), 2);
    assert.deepEqual(manager.stats(), { slotsUsed: 2, slotsTotal: 2, hostUsed: 2, hostTotal: 4, loading: 0 });

    // The old sequence finishes: version 1 is gone from every tier.
    manager.releaseSlot(old);
    assert.ok(manager.isReady(old), 'still retained');
    manager.release(old);
    assert.deepEqual(manager.stats(), { slotsUsed: 1, slotsTotal: 2, hostUsed: 1, hostTotal: 4, loading: 0 });
    assert.equal(slotValue(manager, oldSlot!), null, 'its slot was cleared');
    assert.equal(manager.isReady(old), false);
    assert.equal(manager.acquireSlot(old), null);
    assert.equal(loader.calls.length, 2, 'the old version is never loaded again');
    assert.equal(manager.resolve('a'), 'a@2');
  });

  test('an old version released before its slot leaves once the slot is released', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1);
    assert.equal(manager.acquireSlot('a@1'), 0);
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }]);
    manager.release('a@1');
    assert.equal(manager.stats().slotsUsed, 1, 'still running in its slot');
    assert.equal(manager.stats().hostUsed, 0);
    manager.releaseSlot('a@1');
    assert.equal(manager.stats().slotsUsed, 0);
    assert.equal(slotValue(manager, 0), null);
  });

  test('an old version nobody holds is dropped at once', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1);
    manager.acquireSlot('a@1');
    manager.releaseSlot('a@1');
    manager.release('a@1');
    assert.deepEqual(manager.stats().slotsUsed, 1);
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }]);
    assert.equal(manager.stats().slotsUsed, 0);
    assert.equal(manager.stats().hostUsed, 0);
    assert.equal(manager.resolve('a'), 'a@2');
  });

  test('register of a served name without replace is ADAPTER_EXISTS, without loading', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('s'));
    manager.addResident('m', packed(1));
    await assertRejects(() => manager.register('s', '/adapters/s', 'api'), 'ADAPTER_EXISTS', "'s'");
    await assertRejects(() => manager.register('m', '/adapters/m', 'api', { replace: false }), 'ADAPTER_EXISTS');
    assert.deepEqual(loader.calls, []);
    assert.equal(manager.resolve('s'), 's@1');
  });

  test('of two concurrent registers of one new name, the second to load is ADAPTER_EXISTS', async () => {
    const { manager, loader } = setup();
    const one = manager.register('a', '/adapters/a1', 'api');
    const two = manager.register('a', '/adapters/a2', 'api');
    assert.equal(loader.calls.length, 2);
    loader.calls[1].resolve(loaded(2));
    await two;
    loader.calls[0].resolve(loaded(1));
    await assertRejects(() => one, 'ADAPTER_EXISTS');
    assert.equal(manager.resolve('a'), 'a@1');
    manager.retain('a@1');
    assert.equal(slotValue(manager, manager.acquireSlot('a@1')!), 2);
  });

  for (const name of ['../x', 'a/b', '', '..', 'a..b', '.hidden', '-x', 'a b', 'a@1', 'x'.repeat(129)]) {
    test(`register of the invalid name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…` : name)} is ADAPTER_NAME_INVALID`, async () => {
      const { manager, loader } = setup();
      await assertRejects(() => manager.register(name, '/adapters/x', 'api'), 'ADAPTER_NAME_INVALID');
      assert.deepEqual(loader.calls, []);
      assert.deepEqual(manager.names(), []);
    });
  }

  test('a failing register leaves the catalogue unchanged', async () => {
    const { manager, loader, timed } = setup();
    manager.syncStore(store('a'));
    const error = brokenConfig('x');
    const adding = manager.register('x', '/adapters/x', 'api');
    loader.pending('x').reject(error);
    await assert.rejects(adding, (e) => e === error);
    assert.equal(manager.has('x'), false);

    const replacing = manager.register('a', '/adapters/a2', 'api', { replace: true });
    loader.pending('a').reject(error);
    await assert.rejects(replacing, (e) => e === error);
    assert.deepEqual(manager.names(), ['a']);
    assert.equal(manager.resolve('a'), 'a@1');
    assert.equal(manager.list()[0].origin, 'store');
    assert.equal(manager.list()[0].tier, 'disk');
    assert.deepEqual(
      timed.map(([name, , ok]) => [name, ok]),
      [
        ['x', false],
        ['a', false],
      ],
    );
  });

  test('a name registered again after unregister gets a new version, never an old key', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    assert.ok(manager.unregister('a'));
    const again = manager.register('a', '/adapters/a', 'api');
    loader.pending('a').resolve(loaded(1));
    assert.equal((await again).version, 2);
    assert.equal(manager.resolve('a'), 'a@2');
    assert.equal(manager.isReady('a@1'), false);
  });

  test('addResident of a served name replaces it with a new version', () => {
    const { manager } = setup();
    manager.addResident('m', packed(1));
    manager.addResident('m', packed(2));
    assert.equal(manager.resolve('m'), 'm@2');
    assert.equal(manager.stats().hostUsed, 1);
    assert.equal(slotValue(manager, manager.acquireSlot('m@2')!), 2);
  });
});

describe('AdapterManager: failed loads', () => {
  test('a broken store adapter fails fast until the store changes it', async () => {
    const { manager, loader, failed, ready, timed } = setup();
    manager.syncStore(store('a'));
    const key = manager.resolve('a');
    manager.retain(key);
    const error = brokenConfig('a');
    await failLoad(loader, 'a', error);

    assert.equal(failed.length, 1);
    assert.equal(failed[0][0], key);
    assert.equal(failed[0][1], error);
    assert.deepEqual(ready, []);
    assert.deepEqual(
      timed.map(([name, , ok]) => [name, ok]),
      [['a', false]],
    );
    assert.equal(manager.stats().loading, 0);
    manager.release(key); // the engine finishes the waiting sequence with the error

    assert.throws(
      () => manager.resolve('a'),
      (e) => e === error,
    );
    assert.equal(manager.isReady(key), false);
    manager.retain(key);
    manager.release(key);
    assert.equal(loader.calls.length, 1, 'no new load for a known-broken version');
    const info = manager.list()[0];
    assert.equal(info.tier, 'failed');
    assert.equal(info.error, error.message);

    const unchanged = manager.syncStore(store('a'));
    assert.deepEqual(unchanged, { added: [], removed: [], changed: [] });
    assert.throws(
      () => manager.resolve('a'),
      (e) => e === error,
    );

    const diff = manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }]);
    assert.deepEqual(diff.changed, ['a']);
    assert.equal(manager.resolve('a'), 'a@2');
    assert.equal(manager.list()[0].tier, 'disk');
    assert.equal(manager.list()[0].error, null);
    manager.retain('a@2');
    assert.deepEqual(loader.names(), ['a', 'a']);
    await finishLoad(loader, 'a', 2);
    assert.ok(manager.isReady('a@2'));
    assert.deepEqual(ready, ['a@2']);
  });

  test('a failed version that a sequence still holds does not taint its replacement', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    await failLoad(loader, 'a', brokenConfig('a'));
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }]);
    assert.equal(manager.resolve('a'), 'a@2');
    assert.equal(manager.list()[0].tier, 'disk');
    manager.release('a@1');
    assert.equal(manager.resolve('a'), 'a@2');
  });

  test('a load that fails after its version was replaced reports it but caches nothing', async () => {
    const { manager, loader, failed } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }]);
    await failLoad(loader, 'a', brokenConfig('a'));
    assert.deepEqual(
      failed.map(([key]) => key),
      ['a@1'],
    );
    assert.equal(manager.resolve('a'), 'a@2');
    manager.release('a@1');
  });
});

describe('AdapterManager: syncStore', () => {
  test('reports what was added, removed and changed', () => {
    const { manager } = setup();
    assert.deepEqual(manager.syncStore(store('a', 'b', 'c')), { added: ['a', 'b', 'c'], removed: [], changed: [] });
    assert.deepEqual(manager.list()[0].origin, 'store');
    const diff = manager.syncStore([
      { name: 'a', dir: '/store/a', fingerprint: '2' }, // new weights
      { name: 'c', dir: '/elsewhere/c', fingerprint: '1' }, // moved
      { name: 'd', dir: '/store/d', fingerprint: '1' },
    ]);
    assert.deepEqual(diff, { added: ['d'], removed: ['b'], changed: ['a', 'c'] });
    assert.deepEqual(manager.names(), ['a', 'c', 'd']);
    assert.equal(manager.resolve('a'), 'a@2');
    assert.equal(manager.resolve('c'), 'c@2');
    assert.equal(manager.resolve('d'), 'd@1');
    assert.deepEqual(manager.syncStore(store('d')), { added: [], removed: ['a', 'c'], changed: [] });
  });

  test('a changed adapter loads from its new directory', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.syncStore([{ name: 'a', dir: '/elsewhere/a', fingerprint: '1' }]);
    manager.retain(manager.resolve('a'));
    assert.equal(loader.pending('a').dir, '/elsewhere/a');
  });

  test('names from --adapter, the admin API or memory are neither replaced nor removed by the store', async () => {
    const { manager, loader } = setup();
    const s = manager.register('s', '/cli/s', 'static');
    loader.pending('s').resolve(loaded(1));
    await s;
    const p = manager.register('p', '/api/p', 'api');
    loader.pending('p').resolve(loaded(2));
    await p;
    manager.addResident('m', packed(3));

    const listing: StoreEntry[] = ['s', 'p', 'm'].map((name) => ({ name, dir: `/store/${name}`, fingerprint: 'x' }));
    assert.deepEqual(manager.syncStore(listing), { added: [], removed: [], changed: [] });
    assert.deepEqual(manager.syncStore([]), { added: [], removed: [], changed: [] });
    assert.deepEqual(
      manager.list().map((a) => [a.name, a.version, a.origin]),
      [
        ['s', 1, 'static'],
        ['p', 1, 'api'],
        ['m', 1, 'memory'],
      ],
    );
    assert.equal(loader.calls.length, 2);
  });

  test('an adapter removed from the store keeps its weights until its last sequence ends', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1);
    assert.equal(manager.acquireSlot('a@1'), 0);

    assert.deepEqual(manager.syncStore([]).removed, ['a']);
    assert.equal(manager.has('a'), false);
    await assertThrows(() => manager.resolve('a'), 'ADAPTER_NOT_FOUND', "'a'");
    assert.ok(manager.isReady('a@1'));
    manager.releaseSlot('a@1');
    assert.equal(manager.acquireSlot('a@1'), 0, 'the running sequence can still get its slot');
    assert.equal(slotValue(manager, 0), 1);
    manager.releaseSlot('a@1');
    assert.deepEqual(manager.stats(), { slotsUsed: 1, slotsTotal: 2, hostUsed: 1, hostTotal: 4, loading: 0 });

    manager.release('a@1');
    assert.deepEqual(manager.stats(), { slotsUsed: 0, slotsTotal: 2, hostUsed: 0, hostTotal: 4, loading: 0 });
    assert.equal(manager.isReady('a@1'), false);
    assert.equal(loader.calls.length, 1);
  });

  test('an adapter removed while loading is discarded when its load ends, unless a sequence holds it', async () => {
    const { manager, loader, ready } = setup();
    manager.syncStore(store('a', 'b'));
    manager.requestLoad('a@1'); // asked for, not held
    manager.retain('b@1');
    manager.syncStore([]);
    await finishLoad(loader, 'a', 1);
    await finishLoad(loader, 'b', 2);
    assert.deepEqual(ready, ['b@1']);
    assert.equal(manager.stats().hostUsed, 1);
    assert.ok(manager.isReady('b@1'));
    manager.release('b@1');
    assert.equal(manager.stats().hostUsed, 0);
  });
});

describe('AdapterManager: unregister', () => {
  test('an unknown name is false', () => {
    const { manager } = setup();
    assert.equal(manager.unregister('nope'), false);
  });

  test('a served name is dropped from the catalogue and every tier', () => {
    const { manager } = setup();
    manager.addResident('m', packed(1));
    assert.equal(manager.acquireSlot('m@1'), 0);
    manager.releaseSlot('m@1');
    assert.equal(manager.unregister('m'), true);
    assert.equal(manager.has('m'), false);
    assert.deepEqual(manager.names(), []);
    assert.deepEqual(manager.stats(), { slotsUsed: 0, slotsTotal: 2, hostUsed: 0, hostTotal: 4, loading: 0 });
    assert.equal(manager.unregister('m'), false);
  });

  test('an unloaded store adapter stays out of rescans until its files change (or it leaves the store)', () => {
    const { manager } = setup();
    manager.syncStore(store('a', 'b'));
    assert.equal(manager.unregister('a'), true);
    assert.deepEqual(manager.syncStore(store('a', 'b')), { added: [], removed: [], changed: [] });
    assert.equal(manager.has('a'), false);
    const changed = manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }, ...store('b')]);
    assert.deepEqual(changed.added, ['a']);
    assert.equal(manager.has('a'), true);
    manager.unregister('a');
    manager.syncStore(store('b'));
    assert.deepEqual(manager.syncStore(store('a', 'b')).added, ['a'], 'gone from the store, then back: served');
  });
});

describe('AdapterManager: list', () => {
  test('walks the tiers: disk, loading, host, slot', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    const before = manager.list()[0];
    assert.deepEqual(before, {
      name: 'a',
      version: 1,
      origin: 'store',
      tier: 'disk',
      rank: null,
      targets: null,
      sizeBytes: null,
      error: null,
      warnings: [],
      pinned: false,
      files: { dir: '/store/a', root: undefined },
    });
    manager.retain('a@1');
    assert.equal(manager.list()[0].tier, 'loading');
    assert.equal(manager.list()[0].rank, null);
    await finishLoad(loader, 'a', 1, 8, ['q_proj', 'k_proj']);
    const after = manager.list()[0];
    assert.equal(after.tier, 'host');
    assert.equal(after.rank, 8);
    assert.deepEqual(after.targets, ['q_proj', 'k_proj']);
    assert.equal(after.sizeBytes, 16);
    manager.acquireSlot('a@1');
    assert.equal(manager.list()[0].tier, 'slot');
    manager.releaseSlot('a@1');
    assert.equal(manager.list()[0].tier, 'slot', 'an unpinned slot still holds it');
  });

  test('a failed load is listed as failed with its message', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a', 'b'));
    manager.retain('a@1');
    const error = brokenConfig('a');
    await failLoad(loader, 'a', error);
    assert.deepEqual(
      manager.list().map((a) => [a.name, a.tier, a.error]),
      [
        ['a', 'failed', error.message],
        ['b', 'disk', null],
      ],
    );
  });

  test('the targets it returns are a copy', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1, 1, ['q_proj']);
    manager.list()[0].targets!.push('v_proj');
    assert.deepEqual(manager.list()[0].targets, ['q_proj']);
  });

  test('names keep the order they were first added in', () => {
    const { manager } = setup();
    manager.addResident('z', packed(1));
    manager.syncStore(store('b', 'a'));
    manager.syncStore([{ name: 'b', dir: '/store/b', fingerprint: '2' }, ...store('a')]);
    assert.deepEqual(manager.names(), ['z', 'b', 'a']);
  });
});

/**
 * A sequence admitted with a version keeps that version (the manager's contract). These pin cases where the
 * old version's weights are not resident when its name is replaced or removed: the sequence must get the
 * weights or a failure, never wait forever.
 */
describe('AdapterManager: replaced versions still held by a sequence', () => {
  test('an old version that was waiting for host room loads (or fails) once there is room', async () => {
    const { manager, loader, failed } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b', 'c', 'd'));
    for (const key of ['a@1', 'b@1', 'c@1', 'd@1']) manager.retain(key);
    await finishLoad(loader, 'a', 1);
    await finishLoad(loader, 'b', 2);
    assert.deepEqual(loader.names(), ['a', 'b'], 'c and d wait for room');

    manager.syncStore([...store('a', 'b', 'd'), { name: 'c', dir: '/store/c', fingerprint: '2' }]);
    manager.release('a@1');
    manager.release('b@1');
    assert.deepEqual(
      {
        'c@1 loads or fails': loader.names().includes('c') || failed.some(([key]) => key === 'c@1'),
        'd, behind it, loads': loader.names().includes('d'),
      },
      { 'c@1 loads or fails': true, 'd, behind it, loads': true },
      `the sequence holding c@1 must not wait forever (loads started: ${loader.names().join(', ')})`,
    );
  });

  test('an old version whose only copy was in a reused slot loads (or fails) again', async () => {
    const { manager, loader, failed } = setup({ maxLoras: 1, maxCpuLoras: 1 });
    manager.syncStore(store('a', 'b'));
    manager.retain('a@1');
    await finishLoad(loader, 'a', 1);
    manager.acquireSlot('a@1');
    manager.releaseSlot('a@1');
    manager.release('a@1');
    manager.retain('b@1'); // evicts a's host copy; a stays in the slot
    await finishLoad(loader, 'b', 2);

    manager.retain('a@1'); // a new sequence: ready at once, from the slot
    assert.ok(manager.isReady('a@1'));
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }, ...store('b')]);
    // b's sequence asks for the only slot first (a fix may refuse it while a@1 has no other copy).
    if (manager.acquireSlot('b@1') !== null) manager.releaseSlot('b@1');
    manager.release('b@1');

    const ready = manager.isReady('a@1');
    const settled = ready || loader.names().filter((n) => n === 'a').length === 2 || failed.some(([k]) => k === 'a@1');
    assert.ok(
      settled,
      'the sequence holding a@1 is left waiting forever: its weights are in no tier and never reloaded',
    );
  });
});

describe('AdapterManager: pin', () => {
  test('a pinned adapter loads now and survives eviction pressure; unpinned, it is evicted again', async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b', 'c', 'd'));
    assert.equal(manager.pin('a', true).pinned, true);
    assert.deepEqual(loader.names(), ['a'], 'pinning loads it');
    await finishLoad(loader, 'a', 1);
    for (const [name, value] of [
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ] as const) {
      manager.retain(`${name}@1`);
      await finishLoad(loader, name, value);
      manager.release(`${name}@1`);
      assert.equal(tierOf(manager, 'a'), 'host', `a stays while ${name} loads`);
    }
    assert.deepEqual(loader.names(), ['a', 'b', 'c', 'd']);
    assert.equal(tierOf(manager, 'b'), 'disk');

    assert.equal(manager.pin('a', false).pinned, false);
    manager.retain('b@1');
    await finishLoad(loader, 'b', 2);
    assert.equal(tierOf(manager, 'a'), 'disk', 'unpinned, a is the least recently used');
  });

  test("a pin follows the name's new version when its files change, and ends with the name", async () => {
    const { manager, loader } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b'));
    manager.pin('a', true);
    await finishLoad(loader, 'a', 1);
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }, ...store('b')]);
    assert.deepEqual(loader.names(), ['a', 'a'], 'the new version loads at once');
    await finishLoad(loader, 'a', 5);
    assert.equal(manager.resolve('a'), 'a@2');
    assert.equal(tierOf(manager, 'a'), 'host');
    assert.equal(manager.list()[0].pinned, true);
    manager.retain('b@1');
    await finishLoad(loader, 'b', 2);
    manager.release('b@1');
    assert.equal(tierOf(manager, 'a'), 'host');

    manager.unregister('a');
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '3' }, ...store('b')]);
    assert.equal(manager.list().find((x) => x.name === 'a')?.pinned, false, 'unloading ends the pin');
  });

  test('pinning leaves one host entry for other adapters; an unknown name is ADAPTER_NOT_FOUND', async () => {
    const { manager } = setup({ maxLoras: 1, maxCpuLoras: 2 });
    manager.syncStore(store('a', 'b'));
    manager.pin('a', true);
    await assertThrows(() => manager.pin('b', true), 'REQUEST_INVALID', '--max-cpu-loras');
    manager.pin('a', true); // pinning again is no change
    await assertThrows(() => manager.pin('nope', true), 'ADAPTER_NOT_FOUND');
  });
});

describe('AdapterManager: combinations (compose.ts)', () => {
  const mix = [
    { name: 'a', weight: 0.5 },
    { name: 'b', weight: 2 },
  ];

  test('cold components load first; the virtual adapter then serves Σ w·(its value) from one slot', async () => {
    const { manager, loader, ready } = setup();
    manager.syncStore(store('a', 'b'));
    const key = manager.resolveComposition(mix);
    manager.retain(key);
    assert.deepEqual(loader.names(), ['a', 'b']);
    assert.equal(manager.isReady(key), false);
    await finishLoad(loader, 'a', 3);
    await finishLoad(loader, 'b', 5);
    assert.deepEqual(ready, ['a@1', 'b@1']);
    manager.requestLoad(key); // what the engine does for a waiting sequence
    assert.equal(manager.isReady(key), true);
    const slot = manager.acquireSlot(key)!;
    assert.equal(slotValue(manager, slot), 0.5 * 3 + 2 * 5);
    manager.releaseSlot(key);
    manager.release(key);
    assert.equal(manager.stats().hostUsed, 3, 'the combination stays in the host tier (LRU) after its request');
    assert.equal(manager.resolveComposition([...mix].reverse()), key, 'equal requests share it');
    assert.equal(manager.resolveComposition([{ name: 'a', weight: 1 }]), 'a@1', 'weight 1 alone is the adapter');
  });

  test('a new version of a component retires the combinations built on the old one', async () => {
    const { manager, loader } = setup();
    manager.syncStore(store('a', 'b'));
    const key = manager.resolveComposition(mix);
    manager.retain(key);
    await finishLoad(loader, 'a', 3);
    await finishLoad(loader, 'b', 5);
    manager.requestLoad(key);
    manager.release(key);
    manager.syncStore([{ name: 'a', dir: '/store/a', fingerprint: '2' }, ...store('b')]);
    assert.equal(manager.isReady(key), false);
    assert.notEqual(manager.resolveComposition(mix), key);
  });

  test('a component that fails to load fails the combination’s waiting sequences with a 400 naming lora', async () => {
    const { manager, loader, failed } = setup();
    manager.syncStore(store('a', 'b'));
    const key = manager.resolveComposition(mix);
    manager.retain(key);
    await finishLoad(loader, 'a', 3);
    await failLoad(loader, 'b', brokenConfig('b'));
    manager.requestLoad(key);
    const [, error] = failed.find(([k]) => k === key)!;
    assert.equal(error.status, 400);
    assert.equal(error.param, 'lora');
    assert.match(error.message, /adapter 'b' failed to load/);
    manager.release(key);
  });

  test('a total rank over --max-lora-rank fails once the ranks are known, and is refused at once after', async () => {
    const { manager, loader, failed } = setup({ maxLoraRank: 1 });
    manager.syncStore(store('a', 'b'));
    const key = manager.resolveComposition(mix);
    manager.retain(key);
    await finishLoad(loader, 'a', 3);
    await finishLoad(loader, 'b', 5);
    manager.requestLoad(key);
    assert.match(failed.find(([k]) => k === key)![1].message, /rank 2 .*--max-lora-rank 1/);
    manager.release(key);
    await assertThrows(() => manager.resolveComposition(mix), 'REQUEST_INVALID', '--max-lora-rank 1');
  });
});
