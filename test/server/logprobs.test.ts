/**
 * Logprobs on a real server with the `openai` client, in both OpenAI shapes: completions' {tokens,
 * token_logprobs, top_logprobs, text_offset} and chat's {content: [{token, logprob, bytes, top_logprobs}]},
 * streaming equal to whole responses, numbers equal to the offline engine's, the raw distribution whatever
 * the temperature, and the limits as 400s.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { TokenTexts } from '../../src/server/logprobs.ts';
import { chunksOf, completer, type Loopback, startLoopback } from './loopback.ts';

const PROMPT = 'Once upon a time';
const MAX_TOKENS = 10;
let server: Loopback;
let names: TokenTexts;

before(async () => {
  server = await startLoopback();
  names = new TokenTexts(server.codec.tokenizer);
});

after(() => server.close());

type Logprobs = Required<OpenAI.Completions.CompletionChoice.Logprobs>;

const complete = completer(() => server.client, {
  model: 'base',
  prompt: PROMPT,
  max_tokens: MAX_TOKENS,
  temperature: 0,
  ignore_eos: true,
});

/** The streamed logprobs of choice `index`, concatenated. */
async function streamedLogprobs(extra: Record<string, unknown>, index = 0): Promise<Logprobs> {
  const chunks = await chunksOf<OpenAI.Completion>(
    await server.client.completions.create({
      model: 'base',
      prompt: PROMPT,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      ...extra,
    } as never),
  );
  const all: Logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const c of chunks) {
    const lp = c.choices.find((ch) => ch.index === index)?.logprobs as Logprobs | null | undefined;
    if (!lp) continue;
    all.tokens.push(...lp.tokens);
    all.token_logprobs.push(...lp.token_logprobs);
    all.top_logprobs.push(...lp.top_logprobs);
    all.text_offset.push(...lp.text_offset);
  }
  return all;
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-5;

describe('completions logprobs', () => {
  test('tokens, token_logprobs, top_logprobs (sampled + top k), text_offset: equal to the offline engine', async () => {
    const r = await complete({ logprobs: 3 });
    const lp = r.choices[0].logprobs as Logprobs;
    const seq = server.offline(PROMPT, { maxTokens: MAX_TOKENS, logprobs: 3 });
    assert.equal(lp.tokens.length, r.usage?.completion_tokens);
    assert.deepEqual(
      lp.tokens,
      seq.outputIds.map((id) => names.of(id)),
    );
    let offset = 0;
    lp.tokens.forEach((token, i) => {
      const want = seq.outputLogprobs[i];
      assert.ok(close(lp.token_logprobs[i], want.logprob), `token ${i}`);
      const top = lp.top_logprobs[i];
      assert.deepEqual(Object.keys(top).sort(), [...new Set([token, ...want.topIds.map((id) => names.of(id))])].sort());
      want.topIds.forEach((id, j) => {
        assert.ok(close(top[names.of(id)], want.topLogprobs[j]));
      });
      assert.equal(
        lp.token_logprobs[i],
        Math.max(...Object.values(top)),
        'greedy: the sampled token is the most likely',
      );
      assert.equal(lp.text_offset[i], offset);
      offset += [...token].length;
    });
  });

  test('streaming gives the same logprobs, offsets continuing across chunks', async () => {
    const whole = (await complete({ logprobs: 2 })).choices[0].logprobs as Logprobs;
    assert.deepEqual(await streamedLogprobs({ logprobs: 2 }), whole);
  });

  test('logprobs of the raw distribution: sampling at temperature 1.5 reports the greedy run’s first distribution', async () => {
    const greedy = (await complete({ logprobs: 5, max_tokens: 1 })).choices[0].logprobs as Logprobs;
    const sampled = (await complete({ logprobs: 5, max_tokens: 4, temperature: 1.5, seed: 3 })).choices[0]
      .logprobs as Logprobs;
    const topOf = (lp: Logprobs) =>
      Object.entries(lp.top_logprobs[0])
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5);
    assert.deepEqual(topOf(sampled), topOf(greedy));
    sampled.tokens.forEach((token, i) => {
      assert.equal(sampled.top_logprobs[i][token], sampled.token_logprobs[i]);
    });
  });

  test('logprobs 0: only the sampled token; without logprobs: null', async () => {
    const lp = (await complete({ logprobs: 0 })).choices[0].logprobs as Logprobs;
    assert.ok(lp.top_logprobs.every((top, i) => Object.keys(top).length === 1 && lp.tokens[i] in top));
    const none = await complete({});
    assert.equal(none.choices[0].logprobs, null);
  });

  test('with n = 2 each choice has its own logprobs; with a stop string every generated token has one', async () => {
    const r = await complete({ logprobs: 1, n: 2, temperature: 1, seed: 11 });
    for (const c of r.choices) {
      const lp = c.logprobs as Logprobs;
      assert.equal(lp.tokens.length, MAX_TOKENS);
      assert.equal(lp.text_offset[0], 0);
    }
    assert.deepEqual(await streamedLogprobs({ logprobs: 1, n: 2, temperature: 1, seed: 11 }, 1), r.choices[1].logprobs);
    const text = (await complete({})).choices[0].text;
    const stopped = await complete({ logprobs: 1, stop: text.slice(5, 7) });
    assert.equal((stopped.choices[0].logprobs as Logprobs).tokens.length, stopped.usage?.completion_tokens);
  });
});

describe('chat logprobs', () => {
  const ask = {
    model: 'base',
    messages: [{ role: 'user' as const, content: 'Tell me a story' }],
    max_tokens: 8,
    temperature: 0,
  };

  test('content entries: token, logprob, UTF-8 bytes, top_logprobs sorted; streaming the same', async () => {
    const r = await server.client.chat.completions.create({ ...ask, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0].logprobs?.content ?? [];
    assert.equal(content.length, r.usage?.completion_tokens);
    for (const entry of content) {
      assert.deepEqual(entry.bytes, [...Buffer.from(entry.token, 'utf8')]);
      assert.equal(entry.top_logprobs.length, 2);
      assert.ok(entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob);
      assert.equal(entry.token, entry.top_logprobs[0].token, 'greedy: the most likely token');
      assert.equal(entry.logprob, entry.top_logprobs[0].logprob);
      for (const top of entry.top_logprobs) assert.deepEqual(top.bytes, [...Buffer.from(top.token, 'utf8')]);
    }
    const chunks = await chunksOf<OpenAI.ChatCompletionChunk>(
      await server.client.chat.completions.create({ ...ask, logprobs: true, top_logprobs: 2, stream: true }),
    );
    const streamed = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    assert.deepEqual(streamed, content);
  });

  test('logprobs: true alone gives empty top_logprobs; without it, logprobs is null', async () => {
    const r = await server.client.chat.completions.create({ ...ask, logprobs: true });
    const content = r.choices[0].logprobs?.content ?? [];
    assert.equal(content.length, r.usage?.completion_tokens);
    assert.ok(content.every((e) => e.top_logprobs.length === 0 && e.logprob <= 0));
    const none = await server.client.chat.completions.create(ask);
    assert.equal(none.choices[0].logprobs, null);
  });
});

describe('logprobs limits', () => {
  const rejects = (call: Promise<unknown>, param: string) =>
    assert.rejects(call, (e: unknown) => {
      const err = e as { status: number; param: string; type: string };
      return err.status === 400 && err.param === param && err.type === 'invalid_request_error';
    });

  test('more than 20, a negative count, or top_logprobs without logprobs are 400s naming the field', async () => {
    await rejects(complete({ logprobs: 21 }), 'logprobs');
    await rejects(complete({ logprobs: -1 }), 'logprobs');
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    await rejects(
      server.client.chat.completions.create({ model: 'base', messages, logprobs: true, top_logprobs: 21 }),
      'top_logprobs',
    );
    await rejects(server.client.chat.completions.create({ model: 'base', messages, top_logprobs: 2 }), 'top_logprobs');
  });
});
