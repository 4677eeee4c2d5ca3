/**
 * Request shapes OpenAI and vLLM clients send, on a real loopback server through the official `openai` client:
 * max_tokens defaults to the rest of the context, max_completion_tokens, content given as parts, prompt lists
 * (one choice per prompt, numbered prompt by prompt) and null meaning "the default" — each answer checked
 * against the offline engine.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI, { type APIError } from 'openai';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { LLMEngine } from '../../src/engine/llm-engine.ts';
import type { TextCodec } from '../../src/tokenizer/text-codec.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { chunksOf, testApp } from './loopback.ts';

/** Small, so that "the rest of the context" is a short generation. */
const MAX_MODEL_LEN = 48;

let cache: string;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let client: OpenAI;
let codec: TextCodec;
let local: LLMEngine;

const greedy = (promptIds: number[], maxTokens: number) => {
  const [seq] = local.generate([{ promptIds, adapter: null, params: { maxTokens, temperature: 0, ignoreEos: true } }]);
  return seq.outputIds;
};

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-shapes-'));
  const demo = await ensureDemo(cache);
  const build = { modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 1024, maxModelLen: MAX_MODEL_LEN };
  engine = await AsyncEngine.start(build);
  codec = await loadTextCodec(demo.modelDir);
  app = testApp(engine, codec);
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused' }); // default retries: a 4xx must not be retried
  local = (await buildEngine(build)).engine;
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

const create = (body: Record<string, unknown>) =>
  client.completions.create({
    model: 'base',
    temperature: 0,
    ignore_eos: true,
    ...body,
  } as never) as unknown as Promise<OpenAI.Completion>;

describe('request shapes', () => {
  test('max_tokens omitted (or null): the rest of the context, finish_reason length', async () => {
    const prompt = 'Once upon a time';
    const ids = codec.encode(prompt);
    for (const extra of [{}, { max_tokens: null }]) {
      const r = await create({ prompt, ...extra });
      assert.equal(r.usage?.completion_tokens, MAX_MODEL_LEN - ids.length);
      assert.equal(r.choices[0].finish_reason, 'length');
      assert.equal(r.choices[0].text, codec.decode(greedy(ids, MAX_MODEL_LEN - ids.length)));
    }
  });

  test('max_completion_tokens bounds the output, and wins over max_tokens', async () => {
    const r = await client.chat.completions.create({
      model: 'base',
      messages: [{ role: 'user', content: 'hi' }],
      max_completion_tokens: 3,
      max_tokens: 9,
      temperature: 0,
      ignore_eos: true,
    } as never);
    assert.equal(r.usage?.completion_tokens, 3);
  });

  test('content as a list of text parts is the same prompt as the joined string', async () => {
    const ask = (content: unknown) =>
      client.chat.completions.create({
        model: 'base',
        messages: [{ role: 'user', content } as never],
        max_tokens: 6,
        temperature: 0,
        ignore_eos: true,
        logprobs: true,
      } as never);
    const parts = await ask([
      { type: 'text', text: 'Tell me' },
      { type: 'text', text: 'a story' },
    ]);
    const joined = await ask('Tell me\na story');
    assert.equal(parts.choices[0].message.content, joined.choices[0].message.content);
    assert.equal(parts.usage?.prompt_tokens, joined.usage?.prompt_tokens);
  });

  test('a content part that is not text is a 400 naming it, not retried by the SDK', async () => {
    let calls = 0;
    const counting = new OpenAI({
      baseURL: client.baseURL,
      apiKey: 'unused',
      fetch: (url, init) => {
        calls++;
        return fetch(url as string, init as RequestInit);
      },
    });
    await assert.rejects(
      counting.chat.completions.create({
        model: 'base',
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }],
      }),
      (e: APIError) =>
        e.status === 400 && /image_url/.test(e.message) && (e.param ?? '').includes('messages[0].content[0]'),
    );
    assert.equal(calls, 1);
  });

  test('message fields the server would drop (tool_calls) are 400s naming them', async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: 'base',
        messages: [
          { role: 'user', content: 'x' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
        ],
        max_tokens: 2,
      }),
      (e: APIError) => e.status === 400 && /tool_calls/.test(e.message),
    );
  });

  test('a prompt list: one choice per prompt, in order, each as if alone; usage sums the prompts', async () => {
    const prompts = ['The sea', 'A dragon slept', 'Bread and butter'];
    const r = await create({ prompt: prompts, max_tokens: 5 });
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2],
    );
    prompts.forEach((p, i) => {
      assert.equal(r.choices[i].text, codec.decode(greedy(codec.encode(p), 5)));
    });
    const promptTokens = prompts.reduce((n, p) => n + codec.encode(p).length, 0);
    assert.equal(r.usage?.prompt_tokens, promptTokens);
    assert.equal(r.usage?.completion_tokens, 15);
  });

  test('a list of token-id prompts with n = 2: choice index = prompt × n + choice, streamed too', async () => {
    const prompts = [codec.encode('The sea'), codec.encode('A dragon')];
    const body = { prompt: prompts, max_tokens: 4, n: 2, temperature: 0 };
    const r = await create(body);
    assert.deepEqual(
      r.choices.map((c) => [c.index, c.text]),
      [0, 1, 2, 3].map((i) => [i, codec.decode(greedy(prompts[Math.floor(i / 2)], 4))]),
    );
    const chunks = await chunksOf<OpenAI.Completion>(
      await client.completions.create({ model: 'base', ignore_eos: true, stream: true, ...body } as never),
    );
    const texts = ['', '', '', ''];
    for (const c of chunks) for (const choice of c.choices) texts[choice.index] += choice.text;
    assert.deepEqual(
      texts,
      r.choices.map((c) => c.text),
    );
  });

  test('echo: each choice starts with its prompt, whole and streamed; in chat, a 400', async () => {
    const prompts = ['The sea', 'A dragon slept'];
    const plain = await create({ prompt: prompts, max_tokens: 4 });
    const echoed = await create({ prompt: prompts, max_tokens: 4, echo: true });
    assert.deepEqual(
      echoed.choices.map((c) => c.text),
      plain.choices.map((c, i) => prompts[i] + c.text),
    );
    assert.equal(echoed.usage?.completion_tokens, plain.usage?.completion_tokens);
    const chunks = await chunksOf<OpenAI.Completion>(
      await client.completions.create({
        model: 'base',
        prompt: prompts[0],
        max_tokens: 4,
        temperature: 0,
        ignore_eos: true,
        echo: true,
        stream: true,
      } as never),
    );
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), echoed.choices[0].text);
    await assert.rejects(
      client.chat.completions.create({
        model: 'base',
        messages: [{ role: 'user', content: 'x' }],
        echo: true,
      } as never),
      (e: APIError) => e.status === 400 && /echo/.test(e.message),
    );
  });

  test('best_of: the n of best_of seeded candidates with the highest cumulative logprob; not streamed', async () => {
    const body = { prompt: 'The sea', max_tokens: 6, temperature: 1.2, seed: 11 };
    const all = await create({ ...body, n: 4, logprobs: 0 });
    const score = (c: OpenAI.Completion['choices'][number]) =>
      (c.logprobs?.token_logprobs ?? []).reduce((s, x) => s + (x ?? 0), 0);
    const ranked = [...all.choices].sort((a, b) => score(b) - score(a) || a.index - b.index);
    const picked = await create({ ...body, n: 2, best_of: 4 });
    assert.deepEqual(
      picked.choices.map((c) => [c.index, c.text, c.logprobs]),
      ranked.slice(0, 2).map((c, i) => [i, c.text, null]),
    );
    assert.equal(picked.usage?.completion_tokens, all.usage?.completion_tokens, 'every candidate is counted');
    await assert.rejects(
      create({ ...body, n: 2, best_of: 1 }),
      (e: APIError) => e.status === 400 && e.param === 'best_of',
    );
    await assert.rejects(
      create({ ...body, best_of: 2, stream: true }),
      (e: APIError) => e.status === 400 && e.param === 'best_of',
    );
  });

  test('null means the default for the sampling fields OpenAI lets be null', async () => {
    const nulls = {
      temperature: null,
      top_p: null,
      n: null,
      stop: null,
      seed: null,
      stream: null,
      stream_options: null,
      logprobs: null,
      presence_penalty: null,
      frequency_penalty: null,
      logit_bias: null,
      user: null,
    };
    const r = await create({ prompt: 'The sea', max_tokens: 4, ...nulls, temperature: 0 });
    assert.equal(r.choices.length, 1);
    const chat = await client.chat.completions.create({
      model: 'base',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: null,
      max_completion_tokens: 2,
      top_logprobs: null,
      ...nulls,
    } as never);
    assert.equal(chat.usage?.completion_tokens, 2);
  });

  test('a prompt that fills the context is a 400, as is one too many prompts', async () => {
    const long = Array.from({ length: MAX_MODEL_LEN }, () => 5);
    await assert.rejects(create({ prompt: long }), (e: APIError) => e.status === 400 && /context/.test(e.message));
    const many = Array.from({ length: 17 }, () => 'x');
    await assert.rejects(create({ prompt: many, max_tokens: 1 }), (e: APIError) => e.status === 400);
  });
});
