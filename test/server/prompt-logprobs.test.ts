/**
 * The prompt's logprobs through the completions API (official `openai` client): vLLM's prompt_logprobs (null
 * first, then each prompt token's logprob, rank and the top k by id) and echo with logprobs (the prompt's tokens
 * lead the choice's logprobs, the first without one) — each equal to the offline engine's prompt logprobs,
 * whole and streamed; and vLLM's prompt_logprobs on chat, once at the top level of the response (the first chunk
 * when streaming), equal to completions' for the same token ids.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
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

describe('chat prompt logprobs', () => {
  const messages = [{ role: 'user' as const, content: 'Tell me about ships' }];
  const chat = (extra: Record<string, unknown> = {}) =>
    server.client.chat.completions.create({
      model: 'base',
      messages,
      max_tokens: 3,
      temperature: 0,
      ...extra,
    } as never) as unknown as Promise<OpenAI.ChatCompletion & { prompt_logprobs?: Entry[] }>;
  type Chunk = OpenAI.ChatCompletionChunk & { prompt_logprobs?: Entry[] };
  const inChoices = (choices: object[]) => choices.some((c) => 'prompt_logprobs' in c);

  test("prompt_logprobs: at the top level, equal to completions' for the templated prompt's ids", async () => {
    const ids = server.codec.encodeChat(messages);
    const r = await chat({ prompt_logprobs: 2 });
    const entries = r.prompt_logprobs;
    assert.ok(entries);
    assert.equal(entries.length, r.usage?.prompt_tokens);
    assert.equal(entries[0], null);
    assert.equal(inChoices(r.choices), false);
    for (let p = 1; p < ids.length; p++) {
      assert.equal(entries[p]?.[ids[p]].decoded_token, server.codec.tokenizer.decode([ids[p]]), `position ${p}`);
    }
    const same = await complete({ prompt: ids, prompt_logprobs: 2 });
    assert.deepEqual(entries, (same.choices[0] as unknown as Choice).prompt_logprobs);
    assert.equal('prompt_logprobs' in (await chat()), false, 'not asked, not there');
  });

  test('streamed: the first chunk carries it at the top level, no other chunk does', async () => {
    const whole = await chat({ prompt_logprobs: 1 });
    const chunks = await chunksOf<Chunk>(await chat({ prompt_logprobs: 1, stream: true }));
    assert.deepEqual(chunks[0].prompt_logprobs, whole.prompt_logprobs);
    assert.ok(chunks.slice(1).every((c) => !('prompt_logprobs' in c)));
    assert.ok(chunks.every((c) => !inChoices(c.choices)));
  });

  test('n > 1: one prompt, so one prompt_logprobs for every choice, whole and streamed', async () => {
    const one = await chat({ prompt_logprobs: 1 });
    const r = await chat({ prompt_logprobs: 1, n: 3, temperature: 1, seed: 5 });
    assert.equal(r.choices.length, 3);
    assert.equal(inChoices(r.choices), false);
    assert.deepEqual(r.prompt_logprobs, one.prompt_logprobs);
    const chunks = await chunksOf<Chunk>(
      await chat({ prompt_logprobs: 1, n: 3, temperature: 1, seed: 5, stream: true }),
    );
    const carrying = chunks.filter((c) => 'prompt_logprobs' in c);
    assert.equal(carrying.length, 1);
    assert.equal(carrying[0], chunks[0]);
    assert.deepEqual(carrying[0].prompt_logprobs, one.prompt_logprobs);
    assert.equal(new Set(chunks.flatMap((c) => c.choices.map((ch) => ch.index))).size, 3);
  });

  test('bad prompt_logprobs are 400s naming it; echo and best_of stay refused in chat', async () => {
    const refused = (extra: Record<string, unknown>, param: string) =>
      assert.rejects(chat(extra), (e: { status: number; param?: string }) => {
        return e.status === 400 && e.param === param;
      });
    await refused({ prompt_logprobs: 21 }, 'prompt_logprobs');
    await refused({ prompt_logprobs: -1 }, 'prompt_logprobs');
    await refused({ prompt_logprobs: 1.5 }, 'prompt_logprobs');
    await refused({ prompt_logprobs: 'all' }, 'prompt_logprobs');
    await refused({ prompt_logprobs: 1, echo: true }, 'echo');
    await refused({ prompt_logprobs: 1, best_of: 2 }, 'best_of');
  });
});
