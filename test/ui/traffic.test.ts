/** The dashboard's per-model traffic (waiting → running → finished, tokens/s, TTFT) and its state document. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AdapterInfo } from '../../src/adapters/cache/adapter-manager.ts';
import type { AsyncEngine } from '../../src/engine/async-engine.ts';
import { LoadHistory } from '../../src/server/ui/history.ts';
import { dashboardState } from '../../src/server/ui/state.ts';
import { RATE_WINDOW_MS, TrafficLedger } from '../../src/server/ui/traffic.ts';

/** An event stream the test releases one event at a time. */
function controlled() {
  const queue: { tokens: number[] }[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  return {
    push(n: number) {
      queue.push({ tokens: Array(n).fill(7) });
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *events() {
      while (true) {
        const e = queue.shift();
        if (e) yield e;
        else if (ended) return;
        else await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

/** Pulls one event through the ledger's stream. */
async function step(it: AsyncGenerator<unknown>) {
  const r = await it.next();
  assert.equal(r.done, false);
}

test('a request waits until its first token, then runs; TTFT is measured from submission', async () => {
  let now = 1000;
  const ledger = new TrafficLedger(() => now);
  const source = controlled();
  const it = ledger.counted('pirate', source.events());
  const first = it.next(); // submitted: the ledger sees it once the route starts reading
  await Promise.resolve();
  assert.deepEqual(
    { ...ledger.snapshot().get('pirate'), tokensPerSecond: 0 },
    { running: 0, waiting: 1, requests: 0, tokens: 0, tokensPerSecond: 0, ttftMs: null },
  );
  now = 1250;
  source.push(1);
  await first;
  let s = ledger.snapshot().get('pirate')!;
  assert.equal(s.running, 1);
  assert.equal(s.waiting, 0);
  assert.equal(s.ttftMs, 250);
  now = 1300;
  source.push(1);
  await step(it);
  source.end();
  assert.equal((await it.next()).done, true);
  s = ledger.snapshot().get('pirate')!;
  assert.equal(s.running + s.waiting, 0);
  assert.equal(s.requests, 1);
  assert.equal(s.tokens, 2);
  assert.equal(ledger.snapshot().has(null), false, 'the base has no traffic yet');
});

test('tokens per second count the last window only; TTFT is the median of recent requests', async () => {
  let now = 0;
  const ledger = new TrafficLedger(() => now);
  for (const ttft of [100, 300, 200]) {
    const source = controlled();
    const it = ledger.counted(null, source.events());
    const next = it.next();
    now += ttft;
    source.push(5);
    await next;
    source.end();
    await it.next();
  }
  const base = ledger.snapshot().get(null)!;
  assert.equal(base.ttftMs, 200);
  assert.equal(base.tokens, 15);
  assert.equal(base.tokensPerSecond, (15 * 1000) / RATE_WINDOW_MS);
  now += RATE_WINDOW_MS;
  assert.equal(ledger.snapshot().get(null)!.tokensPerSecond, 0, 'old tokens leave the window');
  assert.equal(ledger.snapshot().get(null)!.tokens, 15, 'the total stays');
});

test('a request that fails or is abandoned stops counting as in flight', async () => {
  const ledger = new TrafficLedger(() => 0);
  async function* failing() {
    yield { tokens: [1] };
    throw new Error('adapter broke');
  }
  await assert.rejects(async () => {
    for await (const _ of ledger.counted('broken', failing()));
  }, /adapter broke/);
  const source = controlled();
  source.push(1);
  for await (const _ of ledger.counted('left', source.events())) break;
  for (const name of ['broken', 'left']) {
    const s = ledger.snapshot().get(name)!;
    assert.deepEqual([s.running, s.waiting, s.requests, s.tokens], [0, 0, 1, 1], name);
  }
});

test('the state lists the base first, then each adapter with its tier named as operators do', () => {
  const adapter = (name: string, tier: AdapterInfo['tier'], rank: number | null): AdapterInfo => ({
    name,
    version: 2,
    origin: 'store',
    tier,
    rank,
    targets: rank ? ['q_proj'] : null,
    sizeBytes: null,
    error: null,
    warnings: [],
    pinned: false,
  });
  const history = new LoadHistory();
  const stats = {
    running: 1,
    waiting: 2,
    kvBlocksUsed: 16,
    kvBlocksTotal: 64,
    runningAdapters: ['a'],
    waitingAdapters: [],
    maxLoras: 4,
    adapterCache: { slotsUsed: 1, slotsTotal: 4, hostUsed: 2, hostTotal: 8, loading: 0 },
  };
  history.record(stats, 5);
  const traffic = new Map([['a', { running: 1, waiting: 0, requests: 3, tokens: 40, tokensPerSecond: 2, ttftMs: 12 }]]);
  const state = dashboardState({
    baseModel: 'base',
    maxModelLen: 4096,
    stats,
    adapters: [adapter('a', 'slot', 8), adapter('b', 'disk', null)],
    traffic,
    history: history.all,
    admin: { enabled: true, ownKey: false },
  });
  assert.deepEqual(
    state.models.map((m) => [m.id, m.kind, m.tier, m.rank, m.running, m.tokens]),
    [
      ['base', 'base', null, null, 0, 0],
      ['a', 'adapter', 'slot', 8, 1, 40],
      ['b', 'adapter', 'store', null, 0, 0],
    ],
  );
  assert.deepEqual(state.history, [{ t: 5, kvUse: 0.25, running: 1, waiting: 2 }]);
});

test('watch counts what engine.generate serves, and stops when asked', async () => {
  const engine = {
    async *generate(_ids: number[], _adapter: string | null) {
      yield { tokens: [1], finishReason: null, promptTokens: 1 };
      yield { tokens: [2], finishReason: 'length', promptTokens: 1 };
    },
  } as unknown as AsyncEngine;
  const prototypeGenerate = engine.generate;
  const ledger = new TrafficLedger(() => 0);
  const unwatch = ledger.watch(engine);
  for await (const _ of engine.generate([5], 'a', {})) {
  }
  assert.equal(ledger.snapshot().get('a')?.tokens, 2);
  unwatch();
  assert.equal(engine.generate, prototypeGenerate);
  for await (const _ of engine.generate([5], 'a', {})) {
  }
  assert.equal(ledger.snapshot().get('a')?.tokens, 2, 'no longer counted');
});
