/**
 * SSE parsing in arbitrary pieces, and the client's timing against a scripted loopback server: TTFT from
 * the first chunk with text (not the role-only one), latency to the last text chunk, usage read, errors
 * (HTTP status, network, in-stream) kept as errors.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BenchClient } from '../../src/bench/client.ts';
import {
  type EndpointConfig,
  endpointUrl,
  type RequestSpec,
  requestBody,
  serverRoot,
} from '../../src/bench/endpoint.ts';
import { splitModels } from '../../src/bench/models.ts';
import { SseParser } from '../../src/bench/sse.ts';

describe('SSE parser', () => {
  test('events split across chunks, several per chunk, CRLF, comments and multi-line data', () => {
    const p = new SseParser();
    const text = ': keep-alive\r\ndata: {"a":1}\r\n\r\ndata: line1\ndata: line2\n\nevent: done\ndata: [DONE]\n\n';
    const events = [];
    for (let i = 0; i < text.length; i += 3) events.push(...p.push(text.slice(i, i + 3)));
    events.push(...p.end());
    assert.deepEqual(events, [
      { event: null, data: '{"a":1}' },
      { event: null, data: 'line1\nline2' },
      { event: 'done', data: '[DONE]' },
    ]);
  });

  test('bytes split inside a multi-byte character decode correctly; a last event without blank line is kept', () => {
    const p = new SseParser();
    const bytes = new TextEncoder().encode('data: héllo ⛈\n\ndata: tail');
    const events = [...p.push(bytes.slice(0, 8)), ...p.push(bytes.slice(8, 15)), ...p.push(bytes.slice(15))];
    events.push(...p.end());
    assert.deepEqual(
      events.map((e) => e.data),
      ['héllo ⛈', 'tail'],
    );
  });
});

describe('endpoint', () => {
  const config: EndpointConfig = {
    url: 'localhost:8000/v1/',
    endpointType: 'chat',
    streaming: true,
    fixOutputLength: true,
    extraInputs: { temperature: 0 },
  };
  const spec: RequestSpec = { model: 'a', prompt: { text: 'hi' }, inputTokens: 1, maxTokens: 8 };

  test('URLs: scheme added, trailing /v1 dropped, path by endpoint type', () => {
    assert.equal(serverRoot('localhost:8000/v1/'), 'http://localhost:8000');
    assert.equal(endpointUrl(config), 'http://localhost:8000/v1/chat/completions');
    assert.equal(endpointUrl({ ...config, endpointType: 'completions' }), 'http://localhost:8000/v1/completions');
    assert.equal(endpointUrl({ ...config, endpointPath: 'custom/gen' }), 'http://localhost:8000/custom/gen');
  });

  test('bodies fix the output length and ask for usage when streaming', () => {
    assert.deepEqual(requestBody(config, spec), {
      model: 'a',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
      min_tokens: 8,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
    });
    const plain = requestBody(
      { ...config, endpointType: 'completions', streaming: false, fixOutputLength: false },
      spec,
    );
    assert.deepEqual(plain, { model: 'a', prompt: 'hi', max_tokens: 8, temperature: 0 });
  });
});

// A scripted server: each request's model names a script. Time is virtual: the clients read `clock`, which
// only the server moves, and only once the client has read (stamped) what the server last wrote. So every gap
// the client measures is exactly the one scripted, however slow the machine (no sleeps, no timing luck).
const clock = {
  ms: 0,
  readers: [] as (() => void)[],
  /** The clients' `now`: each reading also tells the server that the client has taken in what came. */
  now: () => {
    for (const reader of clock.readers.splice(0)) reader();
    return clock.ms;
  },
  /** Resolves at the clients' next reading of the clock. */
  nextRead: () => new Promise<void>((resolve) => clock.readers.push(resolve)),
};
let server: http.Server;
let url: string;

function chunk(content: string | null, extra: Record<string, unknown> = {}) {
  const delta = content === null ? { role: 'assistant', content: '' } : { content };
  return `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
}

before(async () => {
  server = http.createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const { model } = JSON.parse(body);
    /** Writes one SSE event, waits until the client has stamped it, then moves the clock `gapMs` on. */
    const event = async (text: string, gapMs: number) => {
      if (res.destroyed) return;
      const read = clock.nextRead();
      res.write(text);
      await read;
      clock.ms += gapMs;
    };
    if (model === 'missing') {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: { message: "model 'missing' not found" } }));
    }
    if (model === 'hangup') return req.socket.destroy();
    if (model === 'whole') {
      clock.ms += 30;
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({
          choices: [{ message: { role: 'assistant', content: 'abc' } }],
          usage: { prompt_tokens: 3, completion_tokens: 3 },
        }),
      );
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    await event(chunk(null), 60); // role-only: not content
    if (res.destroyed) return; // the client went away (the abort test)
    if (model === 'broken') {
      res.write(`data: ${JSON.stringify({ error: { message: 'engine failed' } })}\n\n`);
      return res.end();
    }
    for (let i = 0; i < 4; i++) await event(chunk(`t${i}`), 20);
    if (model !== 'no-usage') {
      await event(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 4 } })}\n\n`, 0);
    }
    clock.ms += 40; // after the last text: must not count in the latency
    res.end('data: [DONE]\n\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((r) => server.close(() => r())));

function client(streaming = true) {
  return new BenchClient({
    endpoint: { url, endpointType: 'chat', streaming, fixOutputLength: true },
    countTokens: (text) => text.length,
    requestTimeoutMs: 5000,
    now: clock.now,
  });
}

const spec = (model: string): RequestSpec => ({ model, prompt: { text: 'x' }, inputTokens: 1, maxTokens: 4 });

describe('client timing', () => {
  test('TTFT from the first text chunk; latency to the last; usage read', async () => {
    const c = client();
    const r = await c.send(spec('ok'), 0);
    c.close();
    assert.equal(r.error, null);
    assert.equal(r.contentResponses, 4);
    const ttft = (r.firstContentMs as number) - r.startMs;
    const latency = (r.lastContentMs as number) - r.startMs;
    assert.equal(ttft, 60);
    assert.equal(latency - ttft, 60, 'three 20 ms gaps between four text chunks');
    assert.equal(r.endMs - (r.lastContentMs as number), 60, 'the usage chunk and [DONE] come after the last text');
    assert.deepEqual(r.usage, { promptTokens: 9, completionTokens: 4 });
    assert.equal(r.outputTokens, 4);
    assert.equal(r.outputTokensSource, 'usage');
  });

  test('without usage the output is counted by the tokenizer', async () => {
    const c = client();
    const r = await c.send(spec('no-usage'), 0);
    c.close();
    assert.equal(r.outputTokens, 't0t1t2t3'.length);
    assert.equal(r.outputTokensSource, 'tokenizer');
  });

  test('a whole (non-SSE) response has one content response at its end', async () => {
    const c = client(false);
    const r = await c.send(spec('whole'), 0);
    c.close();
    assert.equal(r.error, null);
    assert.equal(r.contentResponses, 1);
    assert.equal(r.firstContentMs, r.lastContentMs);
    assert.equal(r.outputTokens, 3);
  });

  test('HTTP errors, hang-ups and in-stream errors are errors, with a message', async () => {
    const c = client();
    const [missing, hangup, broken] = await Promise.all([
      c.send(spec('missing'), 0),
      c.send(spec('hangup'), 1),
      c.send(spec('broken'), 2),
    ]);
    c.close();
    assert.equal(missing.error?.kind, 'http');
    assert.equal(missing.error?.status, 404);
    assert.match(missing.error?.message ?? '', /HTTP 404: model 'missing' not found/);
    assert.equal(hangup.error?.kind, 'network');
    assert.equal(broken.error?.kind, 'stream');
    assert.match(broken.error?.message ?? '', /engine failed/);
    assert.ok([missing, hangup, broken].every((r) => r.outputTokens === null));
  });

  test('an abort signal cancels a running request', async () => {
    const c = client();
    const abort = new AbortController();
    const pending = c.send(spec('ok'), 0, abort.signal);
    await clock.nextRead(); // the response has begun (its role chunk read): the request is running
    abort.abort();
    const r = await pending;
    c.close();
    assert.equal(r.error?.kind, 'cancelled');
  });
});

describe('served models', () => {
  test('the base has a null parent or id = root; the rest are adapters (vLLM, loraplex, llama.cpp lists)', () => {
    assert.deepEqual(
      splitModels([
        { id: 'meta-llama/Llama-3.1-8B', root: 'meta-llama/Llama-3.1-8B', parent: null },
        { id: 'sql-lora', root: '/adapters/sql', parent: 'meta-llama/Llama-3.1-8B' },
        { id: 'chat-lora', root: '/adapters/chat', parent: 'meta-llama/Llama-3.1-8B' },
      ]),
      { base: 'meta-llama/Llama-3.1-8B', adapters: ['sql-lora', 'chat-lora'] },
    );
    assert.deepEqual(splitModels([{ id: 'model.gguf' }]), { base: 'model.gguf', adapters: [] });
    assert.deepEqual(
      splitModels([
        { id: 'a', parent: 'b', root: 'b' },
        { id: 'b', parent: 'x', root: 'b' },
      ]),
      { base: 'b', adapters: ['a'] },
    );
  });
});
