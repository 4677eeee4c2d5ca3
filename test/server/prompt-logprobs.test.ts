/**
 * The prompt's logprobs through the completions API (official `openai` client): vLLM's prompt_logprobs (null
 * first, then each prompt token's logprob, rank and the top k by id) and echo with logprobs (the prompt's tokens
 * lead the choice's logprobs, the first without one) — each equal to the offline engine's prompt logprobs,
 * whole and streamed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TokenLogprobs } from '../../src/engine/logprobs.ts';
import { chunksOf, completer, type Loopback, startLoopback } from './loopback.ts';

let server: Loopback;
const PROMPT = 'Once upon a time, a ship';

before(async () => {
  server = await startLoopback();
});
after(() => server.close());

const complete = completer(() => server.client, {
  model: 'base',
  prompt: PROMPT,
  max_tokens: 3,
  temperature: 0,
  ignore_eos: true,
});

type Entry = Record<string, { logprob: number; rank: number; decoded_token: string }> | null;
interface Choice {
  text: string;
  prompt_logprobs?: Entry[];
  logprobs: { tokens: string[]; token_logprobs: (number | null)[]; text_offset: number[] } | null;
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-4;

describe('prompt logprobs', () => {
  test("prompt_logprobs: null, then each prompt token's logprob, rank and top k, as the engine computes them", async () => {
    const ids = server.codec.encode(PROMPT);
    const offline = server.offline(PROMPT, { maxTokens: 3, promptLogprobs: 2 }).promptLogprobs;
    assert.ok(offline);
    const r = await complete({ prompt_logprobs: 2 });
    const entries = (r.choices[0] as unknown as Choice).prompt_logprobs;
    assert.ok(entries);
    assert.equal(entries.length, ids.length);
    assert.equal(entries[0], null);
    for (let p = 1; p < ids.length; p++) {
      const entry: Entry = entries[p];
      const expected: TokenLogprobs | null = offline[p];
      assert.ok(entry && expected);
      assert.ok(close(entry[ids[p]].logprob, expected.logprob), `position ${p}`);
      assert.equal(entry[ids[p]].rank, expected.rank);
      assert.equal(entry[ids[p]].decoded_token, server.codec.tokenizer.decode([ids[p]]));
      expected.topIds.forEach((id: number, j: number) => {
        assert.equal(entry[id].rank, id === ids[p] ? expected.rank : j + 1);
      });
    }
    const chunks = await chunksOf<{ choices: Choice[] }>(await complete({ prompt_logprobs: 2, stream: true }));
    assert.deepEqual(chunks[0].choices[0].prompt_logprobs, entries);
  });

  test('echo with logprobs: the prompt tokens lead (the first without a logprob), then the output', async () => {
    const ids = server.codec.encode(PROMPT);
    const offline = server.offline(PROMPT, { maxTokens: 3, promptLogprobs: 1, logprobs: 1 });
    const r = await complete({ echo: true, logprobs: 1 });
    const choice = r.choices[0] as unknown as Choice;
    assert.ok(choice.text.startsWith(PROMPT));
    const lp = choice.logprobs;
    assert.ok(lp);
    assert.equal(lp.tokens.length, ids.length + 3);
    assert.equal(lp.token_logprobs[0], null);
    for (let p = 1; p < ids.length; p++) {
      assert.ok(close(lp.token_logprobs[p] as number, offline.promptLogprobs?.[p]?.logprob as number));
    }
    offline.outputLogprobs.forEach((o, i) => {
      assert.ok(close(lp.token_logprobs[ids.length + i] as number, o.logprob));
    });
    const offsets = lp.tokens.map((_, i) => lp.tokens.slice(0, i).join('').length);
    assert.deepEqual(lp.text_offset, offsets);
    const chunks = await chunksOf<{ choices: Choice[] }>(await complete({ echo: true, logprobs: 1, stream: true }));
    assert.deepEqual(
      chunks.flatMap((c) => c.choices[0]?.logprobs?.token_logprobs ?? []),
      lp.token_logprobs,
    );
  });

  test('prompt_logprobs out of range is a 400 naming it', async () => {
    await assert.rejects(complete({ prompt_logprobs: 21 }), (e: { status: number; param?: string }) => {
      return e.status === 400 && e.param === 'prompt_logprobs';
    });
  });
});
