/**
 * n choices per request on a real server with the `openai` client: one engine sequence per choice, choices
 * indexed 0..n-1, usage summed (the prompt counted once), seeded choices distinct yet reproducible (choice i
 * samples with seed + i, as vLLM), greedy choices equal, streaming chunks carrying their choice's index, and
 * a disconnect aborting all n.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { chunksOf, completer, engineIdle, type Loopback, startLoopback } from './loopback.ts';

const PROMPT = 'Once upon a time';
let server: Loopback;

before(async () => {
  server = await startLoopback();
});

after(() => server.close());

const complete = completer(() => server.client, {
  model: 'base',
  prompt: PROMPT,
  max_tokens: 8,
  ignore_eos: true,
});

/** A streamed completion's text per choice index, and its chunks. */
async function streamedTexts(extra: Record<string, unknown>, n: number) {
  const chunks = await chunksOf<OpenAI.Completion>(
    await server.client.completions.create({
      model: 'base',
      prompt: PROMPT,
      max_tokens: 8,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      ...extra,
    } as never),
  );
  const texts = Array.from({ length: n }, () => '');
  for (const c of chunks) for (const choice of c.choices) texts[choice.index] += choice.text;
  return { texts, chunks };
}

describe('n choices', () => {
  test('greedy: n equal choices indexed 0..n-1; usage sums completions and counts the prompt once', async () => {
    const one = await complete({ temperature: 0 });
    const r = await complete({ temperature: 0, n: 3 });
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2],
    );
    for (const c of r.choices) assert.equal(c.text, one.choices[0].text);
    assert.equal(r.usage?.prompt_tokens, one.usage?.prompt_tokens);
    assert.equal(r.usage?.completion_tokens, 3 * 8);
    assert.equal(r.usage?.total_tokens, (one.usage?.prompt_tokens ?? 0) + 24);
  });

  test('seeded: choices differ, repeat exactly, and choice i is what n = 1 gives with seed + i', async () => {
    const ask = { temperature: 1, seed: 1234, n: 4 };
    const r = await complete(ask);
    const texts = r.choices.map((c) => c.text);
    assert.ok(new Set(texts).size > 1, `the choices differ: ${JSON.stringify(texts)}`);
    const again = await complete(ask);
    assert.deepEqual(
      again.choices.map((c) => c.text),
      texts,
    );
    for (const i of [0, 2]) {
      const single = await complete({ temperature: 1, seed: 1234 + i });
      assert.equal(single.choices[0].text, texts[i], `choice ${i}`);
    }
  });

  test('streaming: every chunk carries one choice with its index; per index the text equals the whole response', async () => {
    const ask = { temperature: 1, seed: 99, n: 3 };
    const whole = await complete(ask);
    const { texts, chunks } = await streamedTexts(ask, 3);
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.text),
    );
    const content = chunks.filter((c) => c.choices.length > 0);
    assert.ok(content.every((c) => c.choices.length === 1));
    assert.deepEqual(new Set(content.map((c) => c.choices[0].index)), new Set([0, 1, 2]));
    const finals = content.filter((c) => c.choices[0].finish_reason !== null).map((c) => c.choices[0].index);
    assert.deepEqual(finals.sort(), [0, 1, 2], 'each choice finishes once');
    const usage = chunks[chunks.length - 1].usage;
    assert.equal(usage?.completion_tokens, 24);
    assert.equal(usage?.prompt_tokens, whole.usage?.prompt_tokens);
  });

  test('chat with n and an adapter: streaming and not agree; each choice starts with the role', async () => {
    const base = {
      model: 'demo-poet',
      messages: [{ role: 'user' as const, content: 'Tell me a story' }],
      max_tokens: 6,
      temperature: 0.8,
      seed: 7,
      n: 2,
    };
    const whole = await server.client.chat.completions.create(base);
    assert.deepEqual(
      whole.choices.map((c) => c.index),
      [0, 1],
    );
    const chunks = await chunksOf<OpenAI.ChatCompletionChunk>(
      await server.client.chat.completions.create({ ...base, stream: true }),
    );
    const texts = ['', ''];
    const roles = [0, 0];
    for (const c of chunks) {
      const choice = c.choices[0];
      texts[choice.index] += choice.delta.content ?? '';
      if (choice.delta.role === 'assistant') roles[choice.index]++;
    }
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.message.content),
    );
    assert.deepEqual(roles, [1, 1]);
  });

  test('a client that disconnects aborts all n sequences', async () => {
    const controller = new AbortController();
    const stream = await server.client.completions.create(
      {
        model: 'base',
        prompt: PROMPT,
        max_tokens: 2000,
        n: 4,
        temperature: 0,
        stream: true,
        ignore_eos: true,
      } as never,
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream as unknown as AsyncIterable<unknown>) {
        if (++chunks === 8) controller.abort();
      }
    } catch {
      // the client may surface the abort as an error or just end the stream
    }
    // Four sequences of 2000 tokens would run for a long time: all four are gone within a few steps.
    await engineIdle(server.engine, 10_000);
  });

  test('n outside 1..16 is a 400 naming the field', async () => {
    for (const n of [0, 17]) {
      await assert.rejects(complete({ n }), (e: unknown) => {
        const err = e as { status: number; param: string };
        return err.status === 400 && err.param === 'n';
      });
    }
  });
});
