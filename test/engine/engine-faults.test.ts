/**
 * Faults in one adapter's work are contained: its sequences fail with ADAPTER_BROKEN and the version is
 * disabled, while every other sequence of the same batches gets exactly the tokens it gets without the fault
 * and every KV block comes back. A fault in the base rows cannot be blamed on an adapter: step() throws.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { GenerationRequest, LLMEngine } from '../../src/engine/llm-engine.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const adapters = ['qv-r8', 'mlp-r1', 'all-r8-rslora'].map((name) => ({ name, dir: join(fixture, 'adapters', name) }));

function requests(n: number): GenerationRequest[] {
  return Array.from({ length: n }, (_, i) => ({
    promptIds: Array.from({ length: 3 + ((i * 7) % 17) }, (_, j) => (i * 13 + j * 5) % 96),
    adapter: i % 4 === 0 ? null : adapters[i % adapters.length].name,
    params: { seed: 1000 + i, maxTokens: 12, temperature: 0.9, topP: 0.9, ignoreEos: true },
  }));
}

async function engine(overrides = {}) {
  const opts = { modelDir: join(fixture, 'model'), adapters, maxLoras: adapters.length, ...overrides };
  return (await buildEngine(opts)).engine;
}

/** Runs the requests together to the end; failed sequences come out finished with their error. */
function runAll(e: LLMEngine, reqs: GenerationRequest[]) {
  const seqs = reqs.map((r) => e.addRequest(r));
  while (seqs.some((s) => !s.isFinished)) e.step();
  return seqs;
}

function assertContained(e: LLMEngine, reqs: GenerationRequest[], broken: string, expected: number[][]) {
  const seqs = runAll(e, reqs);
  for (const [i, seq] of seqs.entries()) {
    if (reqs[i].adapter === broken) {
      assert.ok(isLoraplexError(seq.error, 'ADAPTER_BROKEN'), `request ${i} fails with its adapter`);
      assert.match(seq.error.message, new RegExp(`adapter '${broken}' failed in the engine`));
    } else {
      assert.equal(seq.error, null, `request ${i} (${reqs[i].adapter ?? 'base'}) is unharmed`);
      assert.deepEqual(seq.outputIds, expected[i], `request ${i} gets the tokens it gets without the fault`);
    }
  }
  assert.equal(e.blocks.numFree, e.blocks.numBlocks, 'every KV block is returned');
  assert.equal(e.scheduler.running.length + e.scheduler.waiting.length, 0);
  const info = e.adapters.list().find((a) => a.name === broken)!;
  assert.equal(info.tier, 'failed');
  assert.match(info.error ?? '', /failed in the engine/);
  assert.throws(
    () => e.addRequest({ promptIds: [1, 2], adapter: broken }),
    (err: unknown) => isLoraplexError(err, 'ADAPTER_BROKEN') && err.status === 400,
    'later requests for the adapter get the reason',
  );
  assert.equal(e.generate([{ promptIds: [1, 2], adapter: null, params: { maxTokens: 2 } }])[0].error, null);
}

describe('engine faults', () => {
  test('a kernel that throws for one adapter fails only that adapter; its batch-mates finish unchanged', async () => {
    const reqs = requests(12);
    const expected = runAll(await engine(), reqs).map((s) => s.outputIds);
    const e = await engine({ faults: { throwForAdapter: 'mlp-r1' } });
    assertContained(e, reqs, 'mlp-r1', expected);
  });

  test('a slot copy that throws at admission fails that adapter; the others are admitted', async () => {
    const reqs = requests(12);
    const expected = runAll(await engine(), reqs).map((s) => s.outputIds);
    const e = await engine();
    const acquire = e.adapters.acquireSlot.bind(e.adapters);
    e.adapters.acquireSlot = (key) => {
      if (key.startsWith('qv-r8@')) throw new Error('setLoraSlot: slot copy failed');
      return acquire(key);
    };
    assertContained(e, reqs, 'qv-r8', expected);
  });

  test('a fault in the base rows cannot be blamed on an adapter: step() throws it', async () => {
    const e = await engine({ faults: { throwForBase: true } });
    e.addRequest({ promptIds: [1, 2, 3], adapter: 'qv-r8' });
    e.addRequest({ promptIds: [4, 5], adapter: null });
    assert.throws(() => e.step(), /injected fault: a kernel rejected the base rows/);
  });
});
