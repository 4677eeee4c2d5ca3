/** The optional API key: /v1/* needs the Bearer key; probes and scrapers stay open. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Fastify from 'fastify';
import { keyMatches, registerApiKey } from '../../src/server/auth.ts';

const app = Fastify();
let base: string;

before(async () => {
  registerApiKey(app, 's3cret-key');
  app.get('/v1/models', async () => ({ ok: true }));
  app.get('/v1/health/ready', async () => ({ status: 'ok' }));
  app.get('/metrics', async () => 'm 1');
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
after(() => app.close());

test('keys compare by value, whatever their lengths', () => {
  assert.ok(keyMatches('abc', 'abc'));
  assert.ok(!keyMatches('abc', 'abd'));
  assert.ok(!keyMatches('', 'abc'));
  assert.ok(!keyMatches('abc'.repeat(100), 'abc'));
});

test('/v1 routes need the Bearer key; a wrong or missing one is a 401 in OpenAI shape', async () => {
  const none = await fetch(`${base}/v1/models`);
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.type, 'authentication_error');
  const wrong = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const right = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer s3cret-key' } });
  assert.equal(right.status, 200);
});

test('health and metrics stay open', async () => {
  assert.equal((await fetch(`${base}/v1/health/ready`)).status, 200);
  assert.equal((await fetch(`${base}/metrics`)).status, 200);
});
