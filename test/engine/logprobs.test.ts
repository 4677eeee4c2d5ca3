/**
 * Logprobs from the engine: the raw distribution's log-softmax (checked against one computed here from the
 * prompt logits the engine returns), top k sorted and right, the greedy token's logprob the maximum, and
 * nothing computed for sequences that did not ask.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildEngine } from '../../src/engine/build-engine.ts';
import { logSumExp, topLogits } from '../../src/engine/logprobs.ts';
import type { Sequence } from '../../src/engine/sequence.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const PROMPT = [5, 17, 33, 2, 61, 8];

async function engine() {
  return (await buildEngine({ modelDir: join(fixture, 'model'), adapters: [] })).engine;
}

/** log-softmax of the last prompt position, computed here in f64 without the engine's helpers. */
function lastRowLogSoftmax(seq: Sequence, vocab: number): number[] {
  const logits = seq.promptLogits;
  assert.ok(logits, 'prompt logits were returned');
  const row = Array.from(logits.subarray((seq.promptIds.length - 1) * vocab, seq.promptIds.length * vocab));
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
  return row.map((x) => x - lse);
}

function ranked(logprobs: number[]): number[] {
  return logprobs.map((_, i) => i).sort((a, b) => logprobs[b] - logprobs[a] || a - b);
}

describe('engine logprobs', () => {
  test('equal the log-softmax of the raw logits at every step; top k sorted; greedy picks the maximum', async () => {
    const e = await engine();
    const vocab = e.config.vocabSize;
    const [seq] = e.generate([
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 6, temperature: 0, ignoreEos: true, logprobs: 5 } },
    ]);
    assert.equal(seq.outputLogprobs.length, seq.outputIds.length);
    for (let step = 0; step < seq.outputIds.length; step++) {
      // The distribution of step `step` is the last prompt row of the prompt extended by the earlier outputs.
      const [probe] = e.generate([
        {
          promptIds: [...PROMPT, ...seq.outputIds.slice(0, step)],
          adapter: null,
          params: { maxTokens: 1, temperature: 0, promptLogits: true },
        },
      ]);
      const want = lastRowLogSoftmax(probe, vocab);
      const got = seq.outputLogprobs[step];
      const token = seq.outputIds[step];
      assert.ok(Math.abs(got.logprob - want[token]) < 1e-4, `step ${step}: ${got.logprob} vs ${want[token]}`);
      assert.deepEqual(got.topIds, ranked(want).slice(0, 5), `step ${step}: top 5 ids`);
      got.topLogprobs.forEach((lp, i) => {
        assert.ok(Math.abs(lp - want[got.topIds[i]]) < 1e-4, `step ${step}: top ${i}`);
        if (i > 0) assert.ok(lp <= got.topLogprobs[i - 1], 'sorted, most likely first');
      });
      assert.equal(token, got.topIds[0], 'greedy samples the most likely token');
      assert.equal(got.logprob, got.topLogprobs[0], "the greedy token's logprob is the maximum");
      const total = want.reduce((s, lp) => s + Math.exp(lp), 0);
      assert.ok(Math.abs(total - 1) < 1e-9, 'a distribution');
    }
  });

  test('are of the raw distribution whatever the temperature, top-k and top-p; only for sequences that ask', async () => {
    const e = await engine();
    const vocab = e.config.vocabSize;
    const sampled = { maxTokens: 1, temperature: 1.7, topK: 7, topP: 0.8, seed: 42 };
    const [withLp, without, probe] = e.generate([
      { promptIds: PROMPT, adapter: null, params: { ...sampled, logprobs: 3 } },
      { promptIds: PROMPT, adapter: null, params: sampled },
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 1, temperature: 0, promptLogits: true } },
    ]);
    const want = lastRowLogSoftmax(probe, vocab);
    const got = withLp.outputLogprobs[0];
    assert.ok(Math.abs(got.logprob - want[withLp.outputIds[0]]) < 1e-4);
    assert.deepEqual(got.topIds, ranked(want).slice(0, 3));
    assert.equal(without.outputLogprobs.length, 0);
    assert.deepEqual(without.outputIds, withLp.outputIds, 'asking for logprobs changes no token');
  });

  test('logprobs 0 gives only the sampled token; more than 20 is refused', async () => {
    const e = await engine();
    const [seq] = e.generate([
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 2, temperature: 0, ignoreEos: true, logprobs: 0 } },
    ]);
    assert.deepEqual(
      seq.outputLogprobs.map((lp) => lp.topIds.length),
      [0, 0],
    );
    assert.ok(seq.outputLogprobs.every((lp) => lp.logprob <= 0));
    assert.throws(() => e.addRequest({ promptIds: PROMPT, adapter: null, params: { logprobs: 21 } }), /logprobs/);
  });
});

describe('top-k selection and log-sum-exp', () => {
  test('ties keep the lower id first; NaN never wins; k past the vocabulary returns it all', () => {
    const row = Float32Array.from([1, 3, Number.NaN, 3, -2, 5, 3]);
    assert.deepEqual(topLogits(row, 0, row.length, 3), { ids: [5, 1, 3], values: [5, 3, 3] });
    assert.deepEqual(topLogits(row, 0, row.length, 10).ids, [5, 1, 3, 6, 0, 4, 2]);
    assert.deepEqual(topLogits(row, 0, row.length, 0).ids, []);
  });

  test('log-sum-exp is stable for large logits and matches the direct sum for small ones', () => {
    const big = Float32Array.from([1000, 1000]);
    assert.ok(Math.abs(logSumExp(big, 0, 2) - (1000 + Math.log(2))) < 1e-9);
    const small = Float32Array.from([0.5, -1, 2, 0]);
    const direct = Math.log(Array.from(small).reduce((s, x) => s + Math.exp(x), 0));
    assert.ok(Math.abs(logSumExp(small, 0, 4) - direct) < 1e-12);
    // an offset row inside a batch
    const batch = Float32Array.from([9, 9, 0.5, -1, 2, 0]);
    assert.ok(Math.abs(logSumExp(batch, 2, 4) - direct) < 1e-12);
  });
});
