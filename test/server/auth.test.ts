/**
 * Keys are checked on the route the router matched, never on the raw URL: every route × every spelling of
 * its path (percent-encoded letters, encoded slashes, doubled and trailing slashes, case, dot segments) ×
 * no / wrong / API / admin key. A request without the right key is never served: it is a 401, or a 404
 * when the spelling names no route. Probes and metrics stay open.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { keyMatches, routeScope } from '../../src/server/auth.ts';
import { loadTextCodec, type TextCodec } from '../../src/tokenizer/text-codec.ts';
import { testApp } from './loopback.ts';

const API_KEY = 'api-key-123';
const ADMIN_KEY = 'admin-key-456';

interface Route {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
}

const API_ROUTES: Route[] = [
  { method: 'GET', path: '/v1/models' },
  { method: 'POST', path: '/v1/completions', body: { model: 'base', prompt: 'Hi', max_tokens: 1 } },
  {
    method: 'POST',
    path: '/v1/chat/completions',
    body: { model: 'base', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 },
  },
];
const ADMIN: Route[] = [
  { method: 'POST', path: '/v1/load_lora_adapter', body: { lora_name: 'x', lora_path: '/nowhere' } },
  { method: 'POST', path: '/v1/unload_lora_adapter', body: { lora_name: 'nobody' } },
  { method: 'POST', path: '/v1/pin_lora_adapter', body: { lora_name: 'nobody', pinned: true } },
  { method: 'POST', path: '/v1/rescan_lora_adapters', body: {} },
];
const OPEN: Route[] = ['/health', '/v1/health/live', '/v1/health/ready', '/metrics'].map((path) => ({
  method: 'GET',
  path,
}));

/** Other spellings of a /v1/… path that a router might match, or that a raw-URL check might miss. */
function spellings(path: string): string[] {
  const rest = path.slice('/v1/'.length);
  return [
    path,
    `/%761/${rest}`,
    `/%76%31/${rest}`,
    `/v%31/${rest}`,
    `/v1/${rest.replace(/^./, (c) => `%${c.charCodeAt(0).toString(16)}`)}`,
    `/v1%2F${rest}`,
    `/v1%2f${rest}`,
    `//v1/${rest}`,
    `/v1//${rest}`,
    `${path}/`,
    `${path}?x=1`,
    `${path}#frag`,
    `/V1/${rest}`,
    `/v1/${rest.toUpperCase()}`,
    `/v1/../v1/${rest}`,
    `/v1/./${rest}`,
    `/v1/%2e%2e/v1/${rest}`,
    `/x/../v1/${rest}`,
    `/v1/${rest};x`,
  ];
}

/** A raw HTTP request: the path goes on the wire exactly as written (fetch would normalize it). */
function raw(base: string, method: string, path: string, key: string | null, body?: unknown) {
  const url = new URL(base);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...(key === null ? {} : { authorization: `Bearer ${key}` }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

let cache: string;
let codec: TextCodec;
let engine: AsyncEngine;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-auth-'));
  const demo = await ensureDemo(cache);
  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: [], kvCacheTokens: 1024 });
  codec = await loadTextCodec(demo.modelDir);
});
after(async () => {
  await engine.close();
  await rm(cache, { recursive: true, force: true });
});

async function serverWith(keys: { apiKey?: string; adminKey?: string }) {
  const app = testApp(engine, codec, {
    apiKey: keys.apiKey,
    admin: { allowedRoots: [cache], adminKey: keys.adminKey },
  });
  return { app, base: await app.listen({ host: '127.0.0.1', port: 0 }) };
}

/** Refused at the door: a 401, or no route at all (a 404 from the router, not from a handler). */
function refused(res: { status: number; body: string }): boolean {
  return res.status === 401 || (res.status === 404 && res.body.includes('ROUTE_NOT_FOUND'));
}

/** Every route × spelling × key: served only with `rightKey(route)`; otherwise refused. */
async function checkMatrix(base: string, rightKey: (route: Route) => string | null) {
  const keys = [null, 'wrong', API_KEY, ADMIN_KEY];
  const served: string[] = [];
  for (const route of [...API_ROUTES, ...ADMIN]) {
    const right = rightKey(route);
    for (const path of spellings(route.path)) {
      for (const key of keys) {
        const res = await raw(base, route.method, path, key, route.body);
        if (key === right) continue;
        if (!refused(res)) served.push(`${route.method} ${path} key=${key} → ${res.status}`);
      }
    }
    const canonical = await raw(base, route.method, route.path, right, route.body);
    assert.ok(!refused(canonical), `${route.path} with its key: ${canonical.status} ${canonical.body}`);
  }
  assert.deepEqual(served, [], 'requests served without the right key');
}

describe('API key only: every route but the probes takes it (the admin routes too)', () => {
  let server: Awaited<ReturnType<typeof serverWith>>;
  before(async () => {
    server = await serverWith({ apiKey: API_KEY });
  });
  after(() => server.app.close());

  test('no spelling of a path gets past the key', async () => {
    await checkMatrix(server.base, () => API_KEY);
  });

  test('probes and metrics stay open, whatever the key', async () => {
    for (const route of OPEN) {
      for (const key of [null, 'wrong']) {
        const res = await raw(server.base, route.method, route.path, key);
        assert.equal(res.status, 200, `${route.path} key=${key}`);
      }
    }
  });

  test('a 401 is in OpenAI error shape', async () => {
    const res = await raw(server.base, 'GET', '/%761/models', null);
    assert.equal(res.status, 401);
    const body = JSON.parse(res.body);
    assert.equal(body.error.type, 'authentication_error');
    assert.equal(body.error.code, 'INVALID_API_KEY');
  });
});

describe('API key and admin key: the admin routes take only the admin key', () => {
  let server: Awaited<ReturnType<typeof serverWith>>;
  before(async () => {
    server = await serverWith({ apiKey: API_KEY, adminKey: ADMIN_KEY });
  });
  after(() => server.app.close());

  test('no spelling of a path gets past its key', async () => {
    await checkMatrix(server.base, (route) => (ADMIN.includes(route) ? ADMIN_KEY : API_KEY));
  });
});

describe('admin key only: the admin routes need it, the API is open', () => {
  let server: Awaited<ReturnType<typeof serverWith>>;
  before(async () => {
    server = await serverWith({ adminKey: ADMIN_KEY });
  });
  after(() => server.app.close());

  test('no spelling of an admin path gets past the admin key', async () => {
    const served: string[] = [];
    for (const route of ADMIN) {
      for (const path of spellings(route.path)) {
        for (const key of [null, 'wrong', API_KEY]) {
          const res = await raw(server.base, route.method, path, key, route.body);
          if (!refused(res)) served.push(`${path} key=${key} → ${res.status}`);
        }
      }
    }
    assert.deepEqual(served, []);
    const models = await raw(server.base, 'GET', '/v1/models', null);
    assert.equal(models.status, 200);
  });
});

test('route scopes: probes open, admin routes admin, everything else (new routes too) the API key', () => {
  assert.equal(routeScope('/health'), 'open');
  assert.equal(routeScope('/metrics'), 'open');
  assert.equal(routeScope('/v1/health/ready'), 'open');
  assert.equal(routeScope('/v1/load_lora_adapter'), 'admin');
  assert.equal(routeScope('/v1/models'), 'api');
  assert.equal(routeScope('/v1/some_future_route'), 'api');
  assert.equal(routeScope('/version'), 'api');
});

test('keys compare by value, whatever their lengths', () => {
  assert.ok(keyMatches('abc', 'abc'));
  assert.ok(!keyMatches('abc', 'abd'));
  assert.ok(!keyMatches('', 'abc'));
  assert.ok(!keyMatches('abc'.repeat(100), 'abc'));
});
