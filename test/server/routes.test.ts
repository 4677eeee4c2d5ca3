/**
 * vLLM's and OpenAI's smaller routes on a real loopback server: /tokenize and /detokenize (vLLM's shapes,
 * matching what the completion routes tokenize), /version, /v1/models/{id} through the `openai` client, and
 * CORS: off by default; with --allowed-origins, preflights answered before the key check, the header on
 * answers, errors and SSE streams, and nothing for other origins.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import OpenAI, { type APIError } from 'openai';
import { chunksOf, type Loopback, startLoopback, testApp } from './loopback.ts';

let server: Loopback;
let cors: ReturnType<typeof testApp>;
let corsAddress: string;
const ORIGIN = 'https://app.example';

before(async () => {
  server = await startLoopback();
  cors = testApp(server.engine, server.codec, { apiKey: 'k', allowedOrigins: [ORIGIN] });
  corsAddress = await cors.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await cors.close();
  await server.close();
});

const post = (path: string, body: unknown) =>
  fetch(`${server.address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('tokenize and detokenize', () => {
  test('a prompt: the ids a completion would use, with count, max_model_len and token strings', async () => {
    const prompt = 'Once upon a time';
    const res = await post('/tokenize', { model: 'base', prompt, return_token_strs: true });
    assert.equal(res.status, 200);
    const body = await res.json();
    const ids = server.codec.encode(prompt);
    assert.deepEqual(body.tokens, ids);
    assert.equal(body.count, ids.length);
    assert.equal(body.max_model_len, server.engine.info.maxModelLen);
    assert.deepEqual(
      body.token_strs,
      ids.map((id) => server.codec.tokenizer.decode([id])),
    );
    const completion = await server.client.completions.create({ model: 'base', prompt, max_tokens: 1 });
    assert.equal(completion.usage?.prompt_tokens, body.count);
  });

  test('messages: the chat route prompt (parts too); add_generation_prompt false leaves the prompt off', async () => {
    const messages = [{ role: 'user', content: [{ type: 'text', text: 'hi there' }] }];
    const body = await (await post('/tokenize', { messages })).json();
    assert.deepEqual(body.tokens, server.codec.encodeChat([{ role: 'user', content: 'hi there' }]));
    const chat = await server.client.chat.completions.create({
      model: 'base',
      messages: messages as never,
      max_tokens: 1,
    });
    assert.equal(chat.usage?.prompt_tokens, body.count);
    const bare = await (await post('/tokenize', { messages, add_generation_prompt: false })).json();
    assert.ok(bare.count < body.count);
    assert.deepEqual(bare.tokens, body.tokens.slice(0, bare.count));
  });

  test('detokenize is the inverse on text; bad input is a 400 or 404', async () => {
    const tokens = server.codec.encode(' a small boat');
    const res = await post('/detokenize', { model: 'demo-poet', tokens });
    assert.deepEqual(await res.json(), { prompt: server.codec.decode(tokens) });
    assert.equal((await post('/detokenize', { tokens: [10 ** 9] })).status, 400);
    assert.equal((await post('/tokenize', { prompt: 'x', messages: [{ role: 'user', content: 'x' }] })).status, 400);
    assert.equal((await post('/tokenize', { prompt: 'x', model: 'nope' })).status, 404);
    assert.equal((await post('/tokenize', { prompt: 'x', echo: true })).status, 400);
  });
});

describe('version and models', () => {
  test('/version is the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.deepEqual(await (await fetch(`${server.address}/version`)).json(), { version: pkg.version });
  });

  test('/v1/models/{id}: the base and an adapter as listed, max_model_len on each; unknown ids are 404s', async () => {
    const list = (await server.client.models.list()).data;
    for (const id of ['base', 'demo-pirate']) {
      const model = await server.client.models.retrieve(id);
      assert.deepEqual(
        model,
        list.find((m) => m.id === id),
      );
      assert.equal((model as unknown as { max_model_len: number }).max_model_len, server.engine.info.maxModelLen);
    }
    await assert.rejects(server.client.models.retrieve('nope'), (e: APIError) => e.status === 404);
  });
});

describe('CORS', () => {
  test('off by default: no header', async () => {
    const res = await fetch(`${server.address}/v1/models`, { headers: { origin: ORIGIN } });
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });

  test('a preflight from an allowed origin is a 204, before the key check', async () => {
    const res = await fetch(`${corsAddress}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(res.headers.get('access-control-allow-headers') ?? '', /authorization/);
  });

  test('answers, errors and streams carry the header; another origin gets none', async () => {
    const unauthorized = await fetch(`${corsAddress}/v1/models`, { headers: { origin: ORIGIN } });
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.get('access-control-allow-origin'), ORIGIN);
    const client = new OpenAI({ baseURL: `${corsAddress}/v1`, apiKey: 'k', defaultHeaders: { origin: ORIGIN } });
    const { data, response } = await client.completions
      .create({ model: 'base', prompt: 'hi', max_tokens: 3, stream: true })
      .withResponse();
    assert.equal(response.headers.get('access-control-allow-origin'), ORIGIN);
    assert.ok((await chunksOf(data)).length > 0);
    const other = await fetch(`${corsAddress}/v1/models`, {
      headers: { origin: 'https://evil.example', authorization: 'Bearer k' },
    });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });
});
