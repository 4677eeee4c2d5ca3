/**
 * The engine thread posts one `step` message per engine step, carrying every sequence's new token (and the
 * step's failures); the AsyncEngine fans it out to each request's stream in order. Pinned by counting
 * messages, never by timing: offline (one step → one message with every running sequence) and through the
 * AsyncEngine's message seam (only step messages carry tokens, one entry per sequence per message). The
 * state after a step (stats, adapter tiers) comes in the step's own message, so a finished stream never sees
 * the state of before its last step.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { Sequence } from '../../src/engine/sequence.ts';
import type { FromWorker } from '../../src/engine/worker/protocol.ts';
import { endedIds, type StepMessage, stepMessage } from '../../src/engine/worker/step-message.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const adapters = [{ name: 'qv-r8', dir: join(fixture, 'adapters', 'qv-r8') }];
const prompts = [
  [1, 2, 3],
  [4, 5, 6, 7, 8],
  [9, 10],
];

describe('one message per step', () => {
  test('a step of three sequences is one message with a token for each; the last step ends them all', async () => {
    const { engine } = await buildEngine({ modelDir: join(fixture, 'model'), adapters });
    const ids = new Map<Sequence, number>();
    prompts.forEach((promptIds, i) => {
      const params = { maxTokens: 3, ignoreEos: true, logprobs: i === 1 ? 2 : null };
      ids.set(engine.addRequest({ promptIds, adapter: i === 2 ? 'qv-r8' : null, params }), 10 + i);
    });
    const messages: StepMessage[] = [];
    while (engine.canStep()) messages.push(stepMessage(engine.step(), (seq) => ids.get(seq)));
    // The scheduler's order (round-robin by adapter) is the message's; compare by id.
    for (const m of messages) m.tokens.sort((a, b) => a.id - b.id);
    assert.equal(messages.length, 3, 'three steps: prefill + first token, then two decodes');
    for (const m of messages) {
      assert.deepEqual(
        m.tokens.map((t) => t.id),
        [10, 11, 12],
      );
      assert.deepEqual(m.rejected, []);
      assert.deepEqual(
        m.tokens.map((t) => t.promptTokens),
        prompts.map((p) => p.length),
      );
      assert.ok(m.tokens[1].logprobs, 'logprobs where asked');
      assert.equal(m.tokens[0].logprobs, undefined);
    }
    const seqs = [...ids.keys()];
    assert.deepEqual(
      messages.map((m) => m.tokens.map((t) => t.token)),
      [0, 1, 2].map((step) => seqs.map((s) => s.outputIds[step])),
    );
    assert.deepEqual(
      messages.map((m) => endedIds(m).sort()),
      [[], [], [10, 11, 12]],
    );
    assert.deepEqual(
      messages[2].tokens.map((t) => t.finishReason),
      ['length', 'length', 'length'],
    );
  });

  test('a sequence the server stopped waiting for (no id) is left out', async () => {
    const { engine } = await buildEngine({ modelDir: join(fixture, 'model'), adapters: [] });
    const kept = engine.addRequest({ promptIds: [1, 2], adapter: null, params: { maxTokens: 1, ignoreEos: true } });
    engine.addRequest({ promptIds: [3, 4], adapter: null, params: { maxTokens: 1, ignoreEos: true } });
    const m = stepMessage(engine.step(), (seq) => (seq === kept ? 7 : undefined));
    assert.deepEqual(
      m.tokens.map((t) => [t.id, t.finishReason]),
      [[7, 'length']],
    );
  });

  test('through the engine thread: tokens come only in step messages, one entry per sequence each', async () => {
    const seen: FromWorker[] = [];
    const engine = await AsyncEngine.start(
      { modelDir: join(fixture, 'model'), adapters },
      { onWorkerMessage: (m) => seen.push(m) },
    );
    try {
      const streams = prompts.map(async (promptIds, i) => {
        const events = [];
        for await (const e of engine.generate(promptIds, i === 2 ? 'qv-r8' : null, { maxTokens: 4, ignoreEos: true }))
          events.push(e);
        return events;
      });
      const results = await Promise.all(streams);
      for (const events of results) {
        assert.deepEqual(
          events.map((e) => e.tokens.length),
          [1, 1, 1, 1],
        );
        assert.deepEqual(
          events.map((e) => e.finishReason),
          [null, null, null, 'length'],
        );
      }
      const steps = seen.filter((m): m is StepMessage => m.type === 'step');
      for (const m of steps) {
        const ids = m.tokens.map((t) => t.id);
        assert.equal(new Set(ids).size, ids.length, 'one entry per sequence in a step');
      }
      const received = results.flatMap((events) => events.flatMap((e) => e.tokens));
      assert.deepEqual(
        steps.flatMap((m) => m.tokens.map((t) => t.token)).sort(),
        received.sort(),
        'every token the streams got came in a step message',
      );
    } finally {
      await engine.close();
    }
  });

  test('the tiers after a step come with its tokens: a finished stream reads its adapter in a slot', async () => {
    const seen: FromWorker[] = [];
    const engine = await AsyncEngine.start(
      { modelDir: join(fixture, 'model'), adapters, maxLoras: 1 },
      { onWorkerMessage: (m) => seen.push(m) },
    );
    try {
      assert.notEqual(engine.adapters.find((a) => a.name === 'qv-r8')?.tier, 'slot');
      for await (const _ of engine.generate(prompts[0], 'qv-r8', { maxTokens: 1, ignoreEos: true }));
      // Read synchronously as the stream ends: no later message may be what makes this hold.
      assert.equal(engine.adapters.find((a) => a.name === 'qv-r8')?.tier, 'slot');
      const carrying = seen.find((m): m is StepMessage => m.type === 'step' && m.tokens.length > 0);
      assert.equal(carrying?.adapters?.find((a) => a.name === 'qv-r8')?.tier, 'slot');
      assert.ok(carrying?.stats, 'the stats after the step ride along too');
    } finally {
      await engine.close();
    }
  });
});
