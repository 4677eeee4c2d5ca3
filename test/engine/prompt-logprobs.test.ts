/**
 * Prompt logprobs (vLLM's prompt_logprobs): the logprob of each prompt token after the first under the raw
 * distribution of the position before it — checked against a log-softmax computed here from the prompt logits —
 * with its rank and the top k; the same under chunked prefill; nothing for sequences that did not ask.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { TokenLogprobs } from '../../src/engine/logprobs.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const PROMPT = [5, 17, 33, 2, 61, 8, 40, 40, 3];

async function engine(maxBatchTokens?: number) {
  return (
    await buildEngine({ modelDir: join(fixture, 'model'), adapters: [], ...(maxBatchTokens ? { maxBatchTokens } : {}) })
  ).engine;
}

describe('prompt logprobs', () => {
  test('each prompt token: log-softmax of the previous position, its rank and the top k; none at 0', async () => {
    const e = await engine();
    const vocab = e.config.vocabSize;
    const [seq, plain] = e.generate([
      {
        promptIds: PROMPT,
        adapter: null,
        params: { maxTokens: 2, temperature: 0, promptLogprobs: 3, promptLogits: true },
      },
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 2, temperature: 0 } },
    ]);
    assert.equal(plain.promptLogprobs, null);
    const lps = seq.promptLogprobs;
    const logits: Float32Array | null = seq.promptLogits;
    assert.ok(lps && logits);
    assert.equal(lps.length, PROMPT.length);
    assert.equal(lps[0], null);
    for (let p = 1; p < PROMPT.length; p++) {
      const row: number[] = Array.from(logits.subarray((p - 1) * vocab, p * vocab));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      const lp: TokenLogprobs | null = lps[p];
      assert.ok(lp);
      assert.ok(Math.abs(lp.logprob - (row[PROMPT[p]] - lse)) < 1e-4, `position ${p}`);
      assert.equal(lp.rank, row.filter((x) => x > row[PROMPT[p]]).length + 1);
      const ranked = row.map((_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
      assert.deepEqual(lp.topIds, ranked.slice(0, 3));
    }
  });

  test('chunked prefill gives the same prompt logprobs', async () => {
    const params = { maxTokens: 1, temperature: 0, promptLogprobs: 2 };
    const [whole] = (await engine()).generate([{ promptIds: PROMPT, adapter: null, params }]);
    const [chunked] = (await engine(4)).generate([{ promptIds: PROMPT, adapter: null, params }]);
    assert.equal(chunked.promptLogprobs?.length, PROMPT.length);
    chunked.promptLogprobs?.forEach((lp, p) => {
      const w = whole.promptLogprobs?.[p] ?? null;
      if (lp === null || w === null) {
        assert.equal(lp, w);
        return;
      }
      assert.ok(Math.abs(lp.logprob - w.logprob) < 1e-4);
      assert.deepEqual(lp.topIds, w.topIds);
    });
  });
});
