/**
 * POST /v1/pin_lora_adapter on a real loopback server: behind the admin key, 404 for an unknown name, 400 naming
 * the field for a bad body, and a pinned adapter staying in the host tier while other adapters churn the cache
 * (1 kernel slot, 2 host entries), listed as pinned by /v1/models.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureDemo, writeDemoAdapter } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { testApp } from './loopback.ts';

const API_KEY = 'pin-api-key';
const ADMIN_KEY = 'pin-admin-key';
const NAMES = ['a', 'b', 'c'];

let root: string;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let base: string;

async function post(path: string, body: unknown, key: string | null = ADMIN_KEY) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const pin = (body: unknown, key?: string | null) => post('/v1/pin_lora_adapter', body, key);

async function model(id: string): Promise<{ cache_tier: string; pinned: boolean }> {
  const res = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return (await res.json()).data.find((m: { id: string }) => m.id === id);
}

async function complete(model: string) {
  const res = await post('/v1/completions', { model, prompt: 'Hi', max_tokens: 1 }, API_KEY);
  assert.equal(res.status, 200, JSON.stringify(res.json));
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-pin-'));
  const demo = await ensureDemo(join(root, 'cache'));
  const store = join(root, 'store');
  for (const [i, name] of NAMES.entries()) {
    await mkdir(join(store, name), { recursive: true });
    await writeDemoAdapter(join(store, name), { name, r: 4, alpha: 8, rslora: false, targets: ['q_proj'] }, 7000 + i);
  }
  engine = await AsyncEngine.start({
    modelDir: demo.modelDir,
    adapters: [],
    loraDir: store,
    maxLoras: 1,
    maxCpuLoras: 2,
  });
  app = testApp(engine, await loadTextCodec(demo.modelDir), {
    apiKey: API_KEY,
    admin: { allowedRoots: [store], adminKey: ADMIN_KEY },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app?.close();
  await engine?.close();
  await rm(root, { recursive: true, force: true });
});

describe('POST /v1/pin_lora_adapter', () => {
  test('takes the admin key only', async () => {
    assert.equal((await pin({ lora_name: 'a', pinned: true }, null)).status, 401);
    const withApiKey = await pin({ lora_name: 'a', pinned: true }, API_KEY);
    assert.equal(withApiKey.status, 401);
    assert.equal(withApiKey.json.error.code, 'INVALID_ADMIN_KEY');
    assert.equal((await model('a')).pinned, false);
  });

  test('an unknown name is a 404 naming lora_name', async () => {
    const res = await pin({ lora_name: 'nobody', pinned: true });
    assert.equal(res.status, 404);
    assert.equal(res.json.error.param, 'lora_name');
    assert.match(res.json.error.message, /nobody/);
  });

  for (const [what, body, field] of [
    ['no pinned', { lora_name: 'a' }, 'pinned'],
    ['pinned as a string', { lora_name: 'a', pinned: 'yes' }, 'pinned'],
    ['no lora_name', { pinned: true }, 'lora_name'],
    ['lora_name as a number', { lora_name: 3, pinned: true }, 'lora_name'],
  ] as const) {
    test(`a body with ${what} is a 400 naming ${field}`, async () => {
      const res = await pin(body);
      assert.equal(res.status, 400);
      assert.match(res.json.error.message, new RegExp(field));
      assert.doesNotMatch(res.json.error.message, new RegExp(root));
    });
  }

  test('a pinned adapter stays in the host tier while others evict each other; unpinned, it is evicted', async () => {
    await complete('a');
    const pinned = await pin({ lora_name: 'a', pinned: true });
    assert.equal(pinned.status, 200);
    assert.equal(pinned.json.lora_name, 'a');
    assert.equal(pinned.json.pinned, true);
    assert.equal((await model('a')).pinned, true);

    // Without the pin, b then c would push a (the least recently used) out of the 2-entry host cache.
    await complete('b');
    await complete('c');
    assert.equal((await model('a')).cache_tier, 'host');
    assert.equal((await model('b')).cache_tier, 'disk');

    const full = await pin({ lora_name: 'b', pinned: true });
    assert.equal(full.status, 400, 'one host entry stays free for the other adapters');
    assert.equal(full.json.error.param, 'pinned');

    const unpinned = await pin({ lora_name: 'a', pinned: false });
    assert.deepEqual([unpinned.status, unpinned.json.pinned], [200, false]);
    // b and c again: a is now the least recently used in the host cache and in the one kernel slot.
    await complete('b');
    await complete('c');
    assert.equal((await model('a')).cache_tier, 'disk');
    assert.equal((await model('a')).pinned, false);
  });
});
