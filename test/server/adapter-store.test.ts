/**
 * Adapters served from a store on a real loopback server: loaded on first use off the step path, 4 kernel
 * slots and 8 host-cache entries churned by 24 adapters (every greedy response equals the adapter served
 * alone), one load for concurrent requests of a cold adapter, broken adapters (in the store and through
 * /v1/load_lora_adapter) failing alone while good traffic runs, path escapes refused, load_inplace versions,
 * unload, store rescans, and the bounded queue's 429.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type DemoAdapterSpec, ensureDemo, writeDemoAdapter } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { LLMEngine } from '../../src/engine/llm-engine.ts';
import { buildApp } from '../../src/server/app.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import { loadTextCodec, type TextCodec } from '../../src/tokenizer/text-codec.ts';
import { deadline, engineIdle, metricValue, testApp } from './loopback.ts';

const ALL: DemoAdapterSpec['targets'] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const SPECS: Omit<DemoAdapterSpec, 'name'>[] = [
  { r: 4, alpha: 8, rslora: false, targets: ['q_proj', 'v_proj'] },
  { r: 8, alpha: 16, rslora: true, targets: ALL },
  { r: 16, alpha: 16, rslora: false, targets: ['gate_proj', 'up_proj', 'down_proj'] },
];
const NUM_STORED = 24;
const PROMPT = 'The quick brown fox';
const MAX_TOKENS = 6;

let root: string;
let store: string;
let uploads: string;
let outside: string;
let modelDir: string;
let codec: TextCodec;
let engine: AsyncEngine;
let app: ReturnType<typeof buildApp>;
let base: string;
let offline: LLMEngine;

const stored = (i: number) => `store-${String(i).padStart(2, '0')}`;

async function writeAdapter(dir: string, i: number) {
  await mkdir(dir, { recursive: true });
  await writeDemoAdapter(dir, { name: 'x', ...SPECS[i % SPECS.length] }, 5000 + i);
}

function expected(adapter: string | null, prompt = PROMPT): string {
  const [seq] = offline.generate([
    { promptIds: codec.encode(prompt), adapter, params: { maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true } },
  ]);
  return codec.decode(seq.outputIds);
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function complete(model: string, prompt = PROMPT) {
  const res = await post('/v1/completions', {
    model,
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    ignore_eos: true,
  });
  const json = await res.json();
  return { status: res.status, json, text: res.status === 200 ? (json.choices[0].text as string) : null };
}

/** Adapter loads that succeeded, from the load-latency histogram's count. */
async function loadsOk(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return metricValue(text, 'loraplex_adapter_load_seconds_count', 'outcome="ok"') || 0;
}

async function models(): Promise<{ id: string; cache_tier?: string; version?: number; rank?: number | null }[]> {
  return (await (await fetch(`${base}/v1/models`)).json()).data;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-store-'));
  const demo = await ensureDemo(join(root, 'cache'));
  modelDir = demo.modelDir;
  store = join(root, 'store');
  uploads = join(root, 'uploads');
  outside = join(root, 'outside');
  for (let i = 0; i < NUM_STORED; i++) await writeAdapter(join(store, stored(i)), i);
  await writeAdapter(join(uploads, 'v1'), 100);
  await writeAdapter(join(uploads, 'v2'), 101);
  await writeAdapter(join(outside, 'secret'), 102);
  codec = await loadTextCodec(modelDir);
  // The reference: every adapter resident, served one request at a time.
  const all = [...Array.from({ length: NUM_STORED }, (_, i) => ({ name: stored(i), dir: join(store, stored(i)) }))];
  all.push({ name: 'up-v1', dir: join(uploads, 'v1') }, { name: 'up-v2', dir: join(uploads, 'v2') });
  offline = (await buildEngine({ modelDir, adapters: all, kvCacheTokens: 2048 })).engine;

  engine = await AsyncEngine.start({
    modelDir,
    adapters: [],
    loraDir: store,
    maxLoras: 4,
    maxCpuLoras: 8,
    kvCacheTokens: 8192,
  });
  app = buildApp({
    engine,
    codec,
    baseModel: 'base',
    startedAt: Date.now(),
    lifecycle: new Lifecycle(),
    admin: { allowedRoots: [store, uploads] },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(root, { recursive: true, force: true });
});

describe('adapter store and cache tiers', () => {
  test('/v1/models lists the store with version, tier, rank and targets', async () => {
    const listed = await models();
    assert.equal(listed[0].id, 'base');
    assert.deepEqual(
      listed.slice(1).map((m) => m.id),
      Array.from({ length: NUM_STORED }, (_, i) => stored(i)),
    );
    assert.equal(listed[1].cache_tier, 'disk', 'nothing is loaded before it is asked for');
    assert.equal(listed[1].version, 1);
    await complete(stored(0));
    const after = (await models()).find((m) => m.id === stored(0))!;
    assert.notEqual(after.cache_tier, 'disk');
    assert.equal(after.rank, SPECS[0].r);
  });

  test('churn: 24 adapters through 4 slots and 8 host entries, concurrently; each response equals it alone', async () => {
    const names = [...Array.from({ length: NUM_STORED }, (_, i) => stored(i)), 'base'];
    const requests = [...names, ...names].map((name, i) => ({ name, prompt: `${PROMPT} ${i % 3}` }));
    const results = await Promise.all(requests.map((r) => complete(r.name, r.prompt)));
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const { name, prompt } = requests[i];
      assert.equal(r.text, expected(name === 'base' ? null : name, prompt), `${name}: differs from alone`);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /loraplex_adapter_slot_entries\{state="capacity"[^}]*\} 4/);
    assert.match(metrics, /loraplex_adapter_host_entries\{state="capacity"[^}]*\} 8/);
    assert.ok((await loadsOk()) >= NUM_STORED);
  });

  test('concurrent requests for one cold adapter cause one load', async () => {
    await writeAdapter(join(store, 'cold'), 40);
    await post('/v1/rescan_lora_adapters', {});
    const cold = 'cold';
    assert.equal((await models()).find((m) => m.id === cold)!.cache_tier, 'disk');
    const before = await loadsOk();
    const results = await Promise.all(Array.from({ length: 6 }, () => complete(cold)));
    for (const r of results) assert.equal(r.status, 200);
    assert.equal(new Set(results.map((r) => r.text)).size, 1, 'the same output for every request');
    await rm(join(store, 'cold'), { recursive: true });
    await post('/v1/rescan_lora_adapters', {});
    assert.equal((await loadsOk()) - before, 1);
  });

  test('a broken adapter in the store fails its requests with the reason; the others keep running', async () => {
    const broken = join(store, 'zz-broken');
    await mkdir(broken);
    await writeFile(join(broken, 'adapter_config.json'), '{"peft_type": "LORA", "r": 8,');
    await writeFile(join(broken, 'adapter_model.safetensors'), 'not safetensors');
    assert.equal((await post('/v1/rescan_lora_adapters', {})).status, 200);
    const [bad, good, bad2] = await Promise.all([complete('zz-broken'), complete(stored(1)), complete('zz-broken')]);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'ADAPTER_INVALID_CONFIG');
    assert.equal(bad2.status, 400);
    assert.equal(good.text, expected(stored(1)));
    const again = await complete('zz-broken');
    assert.equal(again.json.error.message, bad.json.error.message, 'the failure is remembered, not reloaded');
    assert.equal((await models()).find((m) => m.id === 'zz-broken')!.cache_tier, 'failed');
    await rm(broken, { recursive: true });
    await post('/v1/rescan_lora_adapters', {});
  });

  test('50 bad adapter loads while good traffic runs: every bad load is refused, no good request fails', async () => {
    const bad = join(uploads, 'bad');
    const kinds = ['json', 'header', 'shape', 'rank', 'pickle'] as const;
    const dirs: string[] = [];
    for (let i = 0; i < 50; i++) {
      const kind = kinds[i % kinds.length];
      const dir = join(bad, `${kind}-${i}`);
      await mkdir(dir, { recursive: true });
      dirs.push(dir);
      if (kind === 'json') {
        await writeFile(join(dir, 'adapter_config.json'), '{ nope');
        continue;
      }
      await writeDemoAdapter(dir, { name: 'x', ...SPECS[0], r: kind === 'rank' ? 128 : 4 }, 7000 + i);
      if (kind === 'header') {
        const file = join(dir, 'adapter_model.safetensors');
        await writeFile(file, (await readFile(file)).subarray(0, 20));
      } else if (kind === 'shape') {
        const cfg = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
        await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 6 }));
      } else if (kind === 'pickle') {
        await rm(join(dir, 'adapter_model.safetensors'));
        await writeFile(join(dir, 'adapter_model.bin'), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
      }
    }
    const good = Array.from({ length: 16 }, (_, i) => stored((i * 5) % NUM_STORED));
    const [loads, served] = await Promise.all([
      Promise.all(dirs.map((dir, i) => post('/v1/load_lora_adapter', { lora_name: `bad-${i}`, lora_path: dir }))),
      Promise.all(good.map((name) => complete(name))),
    ]);
    for (const [i, res] of loads.entries()) {
      assert.equal(res.status, 400, `${dirs[i]} was accepted`);
      const body = await res.json();
      assert.equal(body.error.type, 'invalid_request_error');
    }
    for (const [i, r] of served.entries()) assert.equal(r.text, expected(good[i]));
    const ids = (await models()).map((m) => m.id);
    assert.ok(!ids.some((id) => id.startsWith('bad-')), 'no bad adapter is listed');
  });

  test('lora_path escapes and bad names are refused before anything is opened', async () => {
    await symlink(join(outside, 'secret'), join(uploads, 'link-out'));
    const cases: [string, string, number, string][] = [
      ['a', join(uploads, '..', 'outside', 'secret'), 400, 'ADAPTER_PATH_REFUSED'],
      ['b', join(outside, 'secret'), 400, 'ADAPTER_PATH_REFUSED'],
      ['c', '/etc', 400, 'ADAPTER_PATH_REFUSED'],
      ['d', join(uploads, 'link-out'), 400, 'ADAPTER_PATH_REFUSED'],
      ['e', join(uploads, '%2e%2e', 'outside'), 404, 'ADAPTER_NOT_FOUND'],
      ['../evil', join(uploads, 'v1'), 400, 'ADAPTER_NAME_INVALID'],
      ['a/b', join(uploads, 'v1'), 400, 'ADAPTER_NAME_INVALID'],
    ];
    for (const [name, path, status, code] of cases) {
      const res = await post('/v1/load_lora_adapter', { lora_name: name, lora_path: path });
      assert.equal(res.status, status, `${name} ${path}`);
      assert.equal((await res.json()).error.code, code, `${name} ${path}`);
    }
    for (const model of ['../store-00', '/store-00', 'store-00/..', '%2e%2e']) {
      assert.equal((await complete(model)).status, 404, model);
    }
  });

  test('load, load_inplace (new requests get the new weights, a running one keeps its version), unload', async () => {
    const load = (path: string, inplace?: boolean) =>
      post('/v1/load_lora_adapter', { lora_name: 'live', lora_path: join(uploads, path), load_inplace: inplace });
    const first = await load('v1');
    assert.equal(first.status, 200);
    assert.equal(await first.text(), "Success: LoRA adapter 'live' added successfully.");
    assert.equal((await complete('live')).text, expected('up-v1'));

    const dup = await load('v2');
    assert.equal(dup.status, 400);
    assert.match((await dup.json()).error.message, /has already been loaded/);

    // A long stream on v1, then the swap: it must finish with v1's weights. Its headers come with its first
    // token, so once they are here the engine has admitted it under v1.
    const long = await post('/v1/completions', {
      model: 'live',
      prompt: PROMPT,
      max_tokens: 120,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    });
    assert.equal((await load('v2', true)).status, 200);
    assert.equal((await complete('live')).text, expected('up-v2'));
    const longText = (await long.text())
      .split('\n')
      .filter((line) => line.startsWith('data: {'))
      .map((line) => JSON.parse(line.slice(6)).choices[0].text as string)
      .join('');
    const [alone] = offline.generate([
      {
        promptIds: codec.encode(PROMPT),
        adapter: 'up-v1',
        params: { maxTokens: 120, temperature: 0, ignoreEos: true },
      },
    ]);
    assert.equal(longText, codec.decode(alone.outputIds));
    assert.equal((await models()).find((m) => m.id === 'live')!.version, 2);

    const unload = await post('/v1/unload_lora_adapter', { lora_name: 'live' });
    assert.equal(unload.status, 200);
    assert.equal(await unload.text(), "Success: LoRA adapter 'live' removed successfully.");
    assert.equal((await complete('live')).status, 404);
    const again = await post('/v1/unload_lora_adapter', { lora_name: 'live' });
    assert.equal(again.status, 404);
  });

  test('a client gone before its first token is aborted: running, waiting and KV blocks return to idle', async () => {
    await writeAdapter(join(store, 'gone'), 41);
    await post('/v1/rescan_lora_adapters', {});
    // The engine takes no step while held: the request is surely aborted before its first token.
    engine.holdSteps(0);
    try {
      const ctrl = new AbortController();
      const request = fetch(`${base}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gone', prompt: PROMPT.repeat(40), max_tokens: 200, stream: true }),
        signal: ctrl.signal,
      }).catch(() => null);
      await engine.until(() => engine.stats?.waiting === 1);
      ctrl.abort();
      await request;
      await engineIdle(engine, 10_000);
    } finally {
      engine.holdSteps(null);
    }
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(metricValue(text, 'vllm:num_requests_running'), 0);
    assert.equal(metricValue(text, 'vllm:num_requests_waiting'), 0);
    assert.equal(metricValue(text, 'loraplex_kv_blocks_used'), 0);
    assert.equal((await complete(stored(2))).text, expected(stored(2)), 'the server keeps serving');
  });

  test('a store rescan serves a new adapter and drops a deleted one', async () => {
    await cp(join(uploads, 'v1'), join(store, 'fresh'), { recursive: true });
    assert.equal((await complete('fresh')).status, 404, 'not before the rescan');
    const rescan = await (await post('/v1/rescan_lora_adapters', {})).json();
    assert.deepEqual(rescan.added, ['fresh']);
    assert.equal((await complete('fresh')).text, expected('up-v1'));
    await rm(join(store, 'fresh'), { recursive: true });
    assert.deepEqual((await (await post('/v1/rescan_lora_adapters', {})).json()).removed, ['fresh']);
    assert.equal((await complete('fresh')).status, 404);
  });

  test('an unloaded store adapter stays unloaded across rescans until its files change', async () => {
    await cp(join(uploads, 'v1'), join(store, 'kept-out'), { recursive: true });
    await post('/v1/rescan_lora_adapters', {});
    assert.equal((await post('/v1/unload_lora_adapter', { lora_name: 'kept-out' })).status, 200);
    assert.deepEqual((await (await post('/v1/rescan_lora_adapters', {})).json()).added, []);
    assert.equal((await complete('kept-out')).status, 404);
    await rm(join(store, 'kept-out'), { recursive: true });
    await cp(join(uploads, 'v2'), join(store, 'kept-out'), { recursive: true });
    assert.deepEqual((await (await post('/v1/rescan_lora_adapters', {})).json()).added, ['kept-out']);
    assert.equal((await complete('kept-out')).text, expected('up-v2'));
    await rm(join(store, 'kept-out'), { recursive: true });
    await post('/v1/rescan_lora_adapters', {});
  });

  test("a runtime load under the base model's name is a 400 naming lora_name; /v1/models lists the base once", async () => {
    const res = await post('/v1/load_lora_adapter', { lora_name: 'base', lora_path: join(uploads, 'v1') });
    assert.equal(res.status, 400);
    const { error } = await res.json();
    assert.equal(error.param, 'lora_name');
    assert.match(error.message, /base model's name/);
    const ids = ((await (await fetch(`${base}/v1/models`)).json()).data as { id: string }[]).map((m) => m.id);
    assert.equal(ids.filter((id) => id === 'base').length, 1);
  });
});

describe('server limits', () => {
  test('--lora-refresh-interval picks up a new store adapter by itself', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loraplex-refresh-'));
    const e = await AsyncEngine.start(
      { modelDir, adapters: [], loraDir: dir, kvCacheTokens: 1024 },
      { loraRefreshSeconds: 1 },
    );
    try {
      assert.equal(e.adapters.length, 0);
      await writeAdapter(join(dir, 'late'), 3);
      // The worker's own timer rescans; its adapters message is the event.
      await deadline(
        e.until(() => e.adapters.length > 0),
        10_000,
        () => 'no rescan picked up the adapter',
      );
      assert.deepEqual(
        e.adapters.map((a) => a.name),
        ['late'],
      );
    } finally {
      await e.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a full waiting queue answers 429 with Retry-After; the queued requests still finish', async () => {
    const e = await AsyncEngine.start({
      modelDir,
      adapters: [],
      kvCacheTokens: 2048,
      maxRunningSeqs: 1,
      maxWaitingRequests: 2,
    });
    const a = testApp(e, codec);
    const url = await a.listen({ host: '127.0.0.1', port: 0 });
    try {
      const send = (max: number) =>
        fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'base', prompt: PROMPT, max_tokens: max, ignore_eos: true }),
        });
      // One step (the first request admitted and running), then none: the next two wait, the fourth is refused.
      e.holdSteps(1);
      const running = send(200);
      await e.until(() => e.stats?.running === 1);
      const queued = [send(4), send(4)];
      await e.until(() => e.stats?.waiting === 2);
      const refused = await send(4);
      e.holdSteps(null);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.equal((await refused.json()).error.type, 'rate_limit_error');
      for (const res of await Promise.all([running, ...queued])) assert.equal(res.status, 200);
    } finally {
      await a.close();
      await e.close();
    }
  });

  test('--merge-adapter serves the adapter merged into the base weights (same greedy text as served as LoRA)', async () => {
    const e = await AsyncEngine.start({
      modelDir,
      adapters: [],
      kvCacheTokens: 1024,
      mergeAdapter: join(uploads, 'v1'),
    });
    const a = buildApp({ engine: e, codec, baseModel: 'v1', startedAt: Date.now(), lifecycle: new Lifecycle() });
    const url = await a.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'v1', prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true }),
      });
      assert.equal((await res.json()).choices[0].text, expected('up-v1'));
    } finally {
      await a.close();
      await e.close();
    }
  });

  test('admin routes take the admin key (not the API key); the API takes the API key', async () => {
    const a = buildApp({
      engine,
      codec,
      baseModel: 'base',
      startedAt: Date.now(),
      lifecycle: new Lifecycle(),
      apiKey: 'api-key',
      admin: { allowedRoots: [uploads], adminKey: 'admin-key' },
    });
    const unload = (key: string) =>
      a.inject({
        method: 'POST',
        url: '/v1/unload_lora_adapter',
        headers: { authorization: `Bearer ${key}` },
        payload: { lora_name: 'nobody' },
      });
    assert.equal((await unload('api-key')).statusCode, 401);
    assert.equal((await unload('wrong')).statusCode, 401);
    assert.equal((await unload('admin-key')).statusCode, 404, 'past auth: the adapter is unknown');
    const models = (key: string) => a.inject({ url: '/v1/models', headers: { authorization: `Bearer ${key}` } });
    assert.equal((await models('admin-key')).statusCode, 401);
    assert.equal((await models('api-key')).statusCode, 200);
    await a.close();
  });

  test('before the engine is ready: liveness 200, readiness and the API 503', async () => {
    const lifecycle = new Lifecycle(false);
    const a = buildApp({
      engine: null as unknown as AsyncEngine,
      codec,
      baseModel: 'base',
      startedAt: Date.now(),
      lifecycle,
    });
    assert.equal((await a.inject({ url: '/v1/health/live' })).statusCode, 200);
    assert.equal((await a.inject({ url: '/v1/health/ready' })).statusCode, 503);
    assert.equal((await a.inject({ url: '/v1/models' })).statusCode, 503);
    const res = await a.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'base', prompt: 'x' } });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().error.code, 'SERVER_NOT_READY');
    assert.equal((await a.inject({ url: '/metrics' })).statusCode, 200);
    await a.close();
  });
});
