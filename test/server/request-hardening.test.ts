/**
 * Bad input gets the trusted-server answer, before any stream starts: statuses kept for `stream: true`
 * (429 + Retry-After, 404, 400), an error after the stream began as an error event then [DONE], client
 * mistakes as 400/413/415 (never a 5xx that SDKs retry), token-id prompts as token ids, no type coercion,
 * unimplemented parameters refused by name, echoed names truncated, prompts bounded in bytes and large ones
 * tokenized off the HTTP thread, and running requests ended when the server drains or its engine fails.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { createError } from '../../src/observability/errors.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import { loadTextCodec, type TextCodec } from '../../src/tokenizer/text-codec.ts';
import { deadline, testApp } from './loopback.ts';

let cache: string;
let modelDir: string;
let codec: TextCodec;
let engine: AsyncEngine;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-hardening-'));
  modelDir = (await ensureDemo(cache)).modelDir;
  engine = await AsyncEngine.start({ modelDir, adapters: [], kvCacheTokens: 8192 });
  codec = await loadTextCodec(modelDir);
});
after(async () => {
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

function appWith(options: { lifecycle?: Lifecycle; limits?: { maxBodyBytes?: number; maxPromptBytes?: number } } = {}) {
  return testApp(engine, codec, { lifecycle: options.lifecycle ?? new Lifecycle(), limits: options.limits });
}

const completion = (extra: Record<string, unknown> = {}) => ({
  model: 'base',
  prompt: 'Once upon a time',
  max_tokens: 2,
  ...extra,
});

/** POSTs JSON bodies to /v1/completions of the server at `base`. */
function poster(base: string) {
  return (body: unknown) =>
    fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
}

/** Reads an SSE body into its data payloads (JSON parsed, '[DONE]' kept as is). */
async function events(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

/** Resolves on the engine's message that makes `cond` hold (AsyncEngine.until); the bound only turns a hang into a failure. */
function until(engine: AsyncEngine, cond: () => boolean, what: string, withinMs = 10_000) {
  return deadline(engine.until(cond), withinMs, () => `${what}: ${JSON.stringify(engine.stats)}`);
}

describe('client mistakes are 4xx in OpenAI shape, never 5xx', () => {
  let app: ReturnType<typeof appWith>;
  before(() => {
    app = appWith({ limits: { maxBodyBytes: 64 * 1024 } });
  });
  after(() => app.close());
  const send = (payload: string | undefined, headers: Record<string, string>, method = 'POST') =>
    app.inject({ method: method as 'POST', url: '/v1/completions', payload, headers });
  const json = { 'content-type': 'application/json' };

  const cases: [string, () => ReturnType<typeof send>, number, string][] = [
    ['malformed JSON', () => send('{"model": "base", "prompt": ', json), 400, 'REQUEST_INVALID'],
    ['an empty body', () => send('', json), 400, 'REQUEST_INVALID'],
    ['a NaN literal', () => send('{"model": "base", "prompt": "x", "temperature": NaN}', json), 400, 'REQUEST_INVALID'],
    [
      'an Infinity literal',
      () => send('{"model": "base", "prompt": "x", "max_tokens": Infinity}', json),
      400,
      'REQUEST_INVALID',
    ],
    ['a JSON array body', () => send('[1, 2]', json), 400, 'REQUEST_INVALID'],
    ['no content type', () => send(JSON.stringify(completion()), {}), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    [
      'text/plain',
      () => send(JSON.stringify(completion()), { 'content-type': 'text/plain' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a form',
      () => send('model=base&prompt=x', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a body over the limit',
      () => send(JSON.stringify(completion({ prompt: 'x'.repeat(100_000) })), json),
      413,
      'REQUEST_TOO_LARGE',
    ],
    [
      '__proto__ in the body',
      () => send('{"model": "base", "prompt": "x", "__proto__": {"a": 1}}', json),
      400,
      'REQUEST_INVALID',
    ],
    ['DELETE with a JSON header', () => send(undefined, json, 'DELETE'), 404, 'ROUTE_NOT_FOUND'],
    ['OPTIONS with a JSON header', () => send(undefined, json, 'OPTIONS'), 404, 'ROUTE_NOT_FOUND'],
  ];
  for (const [what, run, status, code] of cases) {
    test(`${what} → ${status} ${code}`, async () => {
      const res = await run();
      assert.equal(res.statusCode, status, res.body);
      assert.equal(res.json().error.code, code);
      assert.ok(!res.body.includes('Unexpected token'), 'the parser message (which quotes the body) stays out');
    });
  }

  test('the default body limit answers 413, also to a client that writes the whole body before reading', async () => {
    const big = appWith();
    const base = new URL(await big.listen({ host: '127.0.0.1', port: 0 }));
    try {
      const body = JSON.stringify(completion({ prompt: 'x'.repeat(17 * 1024 * 1024) }));
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: base.hostname, port: base.port, method: 'POST', path: '/v1/completions', headers: json },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject); // a broken pipe: the server closed before the client could read its answer
        req.end(body);
      });
      assert.equal(status, 413);
    } finally {
      await big.close();
    }
  });
});

describe('values, not only shapes', () => {
  let app: ReturnType<typeof appWith>;
  before(() => {
    app = appWith();
  });
  after(() => app.close());
  const post = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/completions', payload: body });

  test('a token-id prompt is token ids, not text: [9707] is one prompt token', async () => {
    const res = await post(completion({ prompt: [9707] }));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().usage.prompt_tokens, 1);
  });

  for (const prompt of [[-1], [codecVocab()], [1.5], [['1']], [1e30], [null], [[1], 'x']]) {
    test(`token ids outside [0, vocab) or not integers are refused: ${JSON.stringify(prompt)}`, async () => {
      const res = await post(completion({ prompt }));
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.param, 'prompt');
    });
  }

  for (const [field, value] of [
    ['max_tokens', '10'],
    ['temperature', '0.5'],
    ['stream', 'true'],
    ['n', '2'],
    ['seed', '1'],
    ['prompt', 42],
    ['model', ['base']],
  ] as const) {
    test(`no coercion: ${field}: ${JSON.stringify(value)} is a 400 naming it`, async () => {
      const res = await post(completion({ [field]: value }));
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.param, field);
    });
  }

  for (const [field, value] of [
    ['stop', 'x'.repeat(1025)],
    ['stop', ['.', 'y'.repeat(1025)]],
    ['stop_token_ids', Array.from({ length: 1025 }, (_, i) => i)],
  ] as const) {
    test(`per-token work is bounded: ${field} too long is a 400`, async () => {
      const res = await post(completion({ [field]: value }));
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.param, field);
    });
  }

  test('admin names and paths are bounded too', async () => {
    const admin = testApp(engine, codec, { admin: { allowedRoots: [cache] } });
    const res = await admin.inject({
      method: 'POST',
      url: '/v1/load_lora_adapter',
      payload: { lora_name: 'n'.repeat(100_000), lora_path: cache },
    });
    assert.equal(res.statusCode, 400);
    assert.ok(res.body.length < 2048, `${res.body.length} bytes`);
    await admin.close();
  });

  test('max_tokens: null means the default', async () => {
    const res = await post(completion({ max_tokens: null }));
    assert.equal(res.statusCode, 200, res.body);
  });

  for (const [field, value] of [
    ['response_format', { type: 'json_object' }],
    ['tools', [{ type: 'function', function: { name: 'f' } }]],
    ['tool_choice', 'auto'],
    ['suffix', ' end'],
    ['guided_json', { type: 'object' }],
    ['no_such_field', 1],
  ] as const) {
    test(`an unimplemented parameter is refused by name: ${field}`, async () => {
      const res = await post(completion({ [field]: value }));
      assert.equal(res.statusCode, 400, res.body);
      const { error } = res.json();
      assert.equal(error.code, 'PARAMETER_UNSUPPORTED');
      assert.equal(error.param, field);
      assert.match(error.message, new RegExp(field));
    });
  }

  test('those parameters at their neutral values are accepted', async () => {
    const res = await post(
      completion({
        presence_penalty: 0,
        frequency_penalty: 0,
        logit_bias: {},
        echo: false,
        best_of: 1,
        response_format: { type: 'text' },
        tools: [],
        user: 'someone',
      }),
    );
    assert.equal(res.statusCode, 200, res.body);
  });

  test('an unknown model name is echoed truncated, not in full', async () => {
    const res = await post(completion({ model: 'm'.repeat(1024 * 1024) }));
    assert.equal(res.statusCode, 404);
    assert.ok(res.body.length < 2048, `${res.body.length} bytes`);
  });

  test('chat: a list of messages with a template refusal is a 400, not a 500', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { model: 'base', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1, stream: 'yes' },
    });
    assert.equal(res.statusCode, 400);
  });
});

function codecVocab() {
  return 151_665; // the demo's (Qwen2.5's) tokenizer: ids 0..151664
}

describe('prompts are bounded before tokenizing, and large ones do not block the HTTP thread', () => {
  test('a prompt over the byte limit is refused without being tokenized', async () => {
    const app = appWith({ limits: { maxPromptBytes: 1000 } });
    const res = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: completion({ prompt: 'é'.repeat(501) }),
    });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error.message, /1002 bytes.*at most 1000 bytes/);
    const chat = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { model: 'base', messages: [{ role: 'user', content: 'x'.repeat(1000) }] },
    });
    assert.equal(chat.statusCode, 400);
    assert.equal(chat.json().error.param, 'messages');
    await app.close();
  });

  test('the default limit follows the context length (32 bytes a token)', async () => {
    const app = appWith();
    const limit = 32 * engine.info.maxModelLen;
    const res = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: completion({ prompt: 'a'.repeat(limit + 1) }),
    });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error.message, new RegExp(`at most ${limit} bytes`));
    await app.close();
  });

  test('/health answers while the largest allowed prompt is being tokenized', async () => {
    const app = appWith();
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      // One long "word": the tokenizer's worst case (about a second here). It exceeds the context in tokens,
      // so it is refused with a 400 once tokenized.
      const prompt = 'a'.repeat(32 * engine.info.maxModelLen);
      let settled = false;
      const big = poster(base)(completion({ prompt })).finally(() => {
        settled = true;
      });
      // Probes, one after another, for as long as the big prompt is in the server. Tokenized on the HTTP
      // thread, the prompt would hold every probe until it is done: at most the few sent before it arrived
      // would be answered. Off the thread, they keep being answered throughout.
      let answered = 0;
      let slowestMs = 0;
      while (!settled) {
        const started = performance.now();
        const health = await fetch(`${base}/health`);
        slowestMs = Math.max(slowestMs, performance.now() - started);
        assert.equal(health.status, 200);
        if (!settled) answered++;
      }
      const res = await big;
      assert.equal(res.status, 400, 'more tokens than the context holds');
      assert.ok(answered >= 20, `${answered} probes answered while tokenizing (slowest ${slowestMs.toFixed(0)} ms)`);
    } finally {
      await app.close();
    }
  });
});

describe('statuses before streams', () => {
  test('stream: true keeps 404 and 400 statuses', async () => {
    const app = appWith();
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const post = poster(base);
    const unknown = await post(completion({ model: 'nope', stream: true }));
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, 'MODEL_NOT_FOUND');
    const tooLong = await post(completion({ max_tokens: 100_000, stream: true }));
    assert.equal(tooLong.status, 400);
    await app.close();
  });

  test('stream: true with a full waiting queue is a 429 with Retry-After, and the queued requests finish', async () => {
    const small = await AsyncEngine.start({
      modelDir,
      adapters: [],
      kvCacheTokens: 2048,
      maxRunningSeqs: 1,
      maxWaitingRequests: 2,
    });
    const app = testApp(small, codec);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const post = poster(base);
    try {
      // One step (the first request admitted, its first token out), then none until released: it stays running.
      small.holdSteps(1);
      const running = await post(completion({ max_tokens: 400, ignore_eos: true, stream: true }));
      assert.equal(running.status, 200); // admitted: the one running sequence
      const queued = [post(completion({ max_tokens: 2, stream: true })), post(completion({ max_tokens: 2 }))];
      await until(small, () => small.stats?.waiting === 2, 'two waiting requests');
      const refused = await post(completion({ stream: true }));
      small.holdSteps(null);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.equal(refused.headers.get('content-type')?.startsWith('application/json'), true);
      assert.equal((await refused.json()).error.type, 'rate_limit_error');
      const finished = await events(running);
      assert.equal(finished.at(-1), '[DONE]');
      for (const res of await Promise.all(queued)) assert.equal(res.status, 200);
    } finally {
      await app.close();
      await small.close();
    }
  });

  test('n = 16 streams without a MaxListenersExceededWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const app = appWith();
    try {
      const many = Array.from({ length: 12 }, () =>
        app.inject({ method: 'POST', url: '/v1/completions', payload: completion({ n: 16, stream: true }) }),
      );
      for (const res of await Promise.all(many)) assert.equal(res.statusCode, 200);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w === 'MaxListenersExceededWarning'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      await app.close();
    }
  });
});

describe('running requests end when the server must stop them', () => {
  async function streamThenCancel(cancel: (l: Lifecycle) => void) {
    const lifecycle = new Lifecycle();
    const app = appWith({ lifecycle });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const post = poster(base);
      // Steps one at a time: neither request can finish before the cancel, however fast the machine.
      engine.holdSteps(1);
      const res = await post(completion({ max_tokens: 3000, ignore_eos: true, stream: true }));
      assert.equal(res.status, 200);
      const whole = post(completion({ max_tokens: 3000, ignore_eos: true }));
      await until(engine, () => engine.stats?.running === 1 && engine.stats.waiting === 1, 'the second request queued');
      engine.holdSteps(1);
      await until(engine, () => engine.stats?.running === 2, 'two running sequences');
      cancel(lifecycle);
      const streamed = await events(res);
      return { streamed, whole: await whole };
    } finally {
      engine.holdSteps(null);
      await app.close();
    }
  }

  test('at the drain deadline: the stream gets an error event then [DONE]; a whole response is a 503', async () => {
    const { streamed, whole } = await streamThenCancel((l) => l.cancelRunning(createError('SERVER_DRAINING', {})));
    assert.equal(streamed.at(-1), '[DONE]');
    const error = streamed.at(-2) as { error: { code: string; type: string } };
    assert.equal(error.error.code, 'SERVER_DRAINING');
    assert.equal(whole.status, 503);
    assert.equal(whole.headers.get('retry-after'), '5');
    assert.equal((await whole.json()).error.code, 'SERVER_DRAINING');
  });

  test('on an engine fault: running requests end with ENGINE_FAILED, new ones and the probes get 503', async () => {
    let lifecycle: Lifecycle | null = null;
    const { streamed, whole } = await streamThenCancel((l) => {
      lifecycle = l;
      l.markFaulted(createError('ENGINE_FAILED', { reason: 'injected' }));
    });
    assert.equal((streamed.at(-2) as { error: { code: string } }).error.code, 'ENGINE_FAILED');
    assert.equal(whole.status, 503);
    const app = appWith({ lifecycle: lifecycle! });
    const next = await app.inject({ method: 'POST', url: '/v1/completions', payload: completion() });
    assert.equal(next.statusCode, 503);
    assert.equal(next.json().error.code, 'ENGINE_FAILED');
    assert.equal((await app.inject({ url: '/v1/health/ready' })).statusCode, 503);
    assert.equal((await app.inject({ url: '/v1/health/live' })).statusCode, 503);
    assert.equal((await app.inject({ url: '/metrics' })).statusCode, 200);
    await app.close();
  });
});
