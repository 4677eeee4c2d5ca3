/**
 * The server thread learns when the engine thread fails: it exits, a step never returns (the watchdog), or a
 * step throws what no adapter can be blamed for. Every pending request then fails with ENGINE_FAILED, later
 * ones too, and onFault hears it once. Also: the native configuration reaches the engine thread's addon.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AsyncEngine, type StartOptions } from '../../src/engine/async-engine.ts';
import type { BuildOptions } from '../../src/engine/build-engine.ts';
import { isLoraplexError, type LoraplexError } from '../../src/observability/errors.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const adapters = [{ name: 'qv-r8', dir: join(fixture, 'adapters', 'qv-r8') }];

async function start(build: Partial<BuildOptions>, opts: StartOptions = {}) {
  const engine = await AsyncEngine.start({ modelDir: join(fixture, 'model'), adapters, ...build }, opts);
  const faults: LoraplexError[] = [];
  const faulted = new Promise<LoraplexError>((resolve) => {
    engine.onFault = (e) => {
      faults.push(e);
      resolve(e);
    };
  });
  return { engine, faults, faulted };
}

async function drain(engine: AsyncEngine, adapter: string | null) {
  const tokens: number[] = [];
  for await (const e of engine.generate([1, 2, 3], adapter, { maxTokens: 4, ignoreEos: true }))
    tokens.push(...e.tokens);
  return tokens;
}

const engineFailed = (pattern: RegExp) => (e: unknown) =>
  isLoraplexError(e, 'ENGINE_FAILED') && e.status === 503 && pattern.test(e.message);

describe('async engine faults', () => {
  test('the engine thread exiting fails every pending request with ENGINE_FAILED, and later ones', async () => {
    const { engine, faults, faulted } = await start({ faults: { exitOnStep: true } });
    const pending = [drain(engine, null), drain(engine, 'qv-r8')];
    for (const p of pending) await assert.rejects(p, engineFailed(/exited unexpectedly \(code 3\)/));
    assert.equal((await faulted).code, 'ENGINE_FAILED');
    await assert.rejects(drain(engine, null), engineFailed(/exited/));
    await assert.rejects(engine.admin({ op: 'rescan' }), engineFailed(/exited/));
    assert.equal(faults.length, 1, 'onFault is told once');
    await engine.close();
  });

  test('a step that never returns trips the watchdog after the stall timeout', async () => {
    const { engine, faulted } = await start({ faults: { hangOnStep: true } }, { stallTimeoutSeconds: 0.3 });
    const started = performance.now();
    await assert.rejects(drain(engine, null), engineFailed(/no engine step for 0.3 s while 1 request\(s\) waited/));
    assert.ok(performance.now() - started < 10_000);
    await faulted;
    await engine.close();
  });

  test('the watchdog also sees an engine that hangs with only admin calls waiting', { timeout: 20_000 }, async () => {
    const { engine, faulted } = await start({ faults: { hangOnStep: true } }, { stallTimeoutSeconds: 0.3 });
    // A request hangs the engine thread on its first step, then leaves: only the admin call waits after it.
    const abort = new AbortController();
    const gen = engine.generate([1, 2, 3], null, { maxTokens: 4 }, abort.signal);
    const first = gen.next();
    abort.abort();
    await first;
    await assert.rejects(engine.admin({ op: 'rescan' }), engineFailed(/while 1 request\(s\) waited/));
    await faulted;
    await engine.close();
  });

  test('a step that throws in the base rows is an engine fault', async () => {
    const { engine, faulted } = await start({ faults: { throwForBase: true } });
    await assert.rejects(drain(engine, null), engineFailed(/a step failed: injected fault/));
    await faulted;
    await engine.close();
  });

  test('an adapter at fault fails its own request only (400), the engine serves on', async () => {
    const { engine, faults } = await start({ faults: { throwForAdapter: 'qv-r8' } });
    const [broken, base] = await Promise.allSettled([drain(engine, 'qv-r8'), drain(engine, null)]);
    assert.equal(broken.status, 'rejected');
    assert.ok(isLoraplexError((broken as PromiseRejectedResult).reason, 'ADAPTER_BROKEN'));
    assert.equal(base.status, 'fulfilled');
    assert.equal((base as PromiseFulfilledResult<number[]>).value.length, 4);
    assert.equal(engine.adapters.find((a) => a.name === 'qv-r8')?.tier, 'failed');
    assert.equal(faults.length, 0);
    assert.equal(engine.fault, null);
    await engine.close();
  });

  test('the native configuration reaches the engine thread: a pool of 1 thread', async () => {
    const { engine } = await start({ native: { threads: 1 } });
    assert.equal(engine.info.native?.threads, 1);
    await engine.close();
  });
});
