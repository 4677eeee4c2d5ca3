/**
 * `loraplex serve` serves the dashboard by default and not with --no-ui; the page itself is open, its data
 * takes the API key, and the page may load only its own files.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { routeScope } from '../../src/server/auth.ts';
import { startServe } from '../server/serve-process.ts';

// One demo model for both servers: written once, not once per process.
let cache = '';
before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-serve-ui-'));
});
after(() => rm(cache, { recursive: true, force: true }));

test('serve: the dashboard at / by default; its state takes the API key', async () => {
  const server = await startServe(['--api-key', 'k'], { LORAPLEX_CACHE: cache });
  try {
    await server.waitForLog("serving '");
    const page = await fetch(`${server.base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/ui\/app.js">/);
    assert.doesNotMatch(html, /https?:\/\//, 'no CDN: the page names no other origin');
    const script = await fetch(`${server.base}/ui/app.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal((await fetch(`${server.base}/ui/app.css`)).status, 200);

    assert.equal((await fetch(`${server.base}/ui/api/state`)).status, 401);
    const state = await fetch(`${server.base}/ui/api/state`, { headers: { authorization: 'Bearer k' } });
    assert.equal(state.status, 200);
    const body = (await state.json()) as { models: { id: string; kind: string }[]; admin: { enabled: boolean } };
    assert.deepEqual(
      body.models.map((m) => m.kind),
      ['base', 'adapter', 'adapter', 'adapter', 'adapter'],
    );
    assert.equal(body.admin.enabled, false);
  } finally {
    await server.close();
  }
});

test('serve --no-ui: no dashboard routes', async () => {
  const server = await startServe(['--no-ui'], { LORAPLEX_CACHE: cache });
  try {
    await server.waitForLog("serving '");
    for (const path of ['/', '/ui/app.js', '/ui/api/state']) {
      const res = await fetch(`${server.base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'ROUTE_NOT_FOUND');
    }
    assert.equal((await fetch(`${server.base}/v1/models`)).status, 200);
  } finally {
    await server.close();
  }
});

test('the page, script and style are open routes; the state is an API route', () => {
  for (const path of ['/', '/ui/app.js', '/ui/app.css']) assert.equal(routeScope(path), 'open', path);
  assert.equal(routeScope('/ui/api/state'), 'api');
});
