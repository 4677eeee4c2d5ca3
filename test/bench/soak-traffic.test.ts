/** The soak's traffic mix: seeded (a run repeats its mix), every kind present, each with its expected answer. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrafficMix } from '../../bench/soak/traffic.ts';

const mix = (seed: number) =>
  new TrafficMix({
    seed,
    base: 'base',
    storeAdapters: ['s000', 's001', 's002', 's003'],
    badAdapters: [
      { name: 'bad-nan-weights', kind: 'nan-weights' },
      { name: 'bad-config-symlink-out', kind: 'config-symlink-out' },
    ],
    apiKey: 'k',
    contextTokens: 64,
    maxPromptBytes: 2048,
    uploaded: () => ['u000'],
  });

test('the same seed gives the same requests; another seed another mix', () => {
  const a = mix(7);
  const b = mix(7);
  const c = mix(8);
  const draw = (m: TrafficMix) => Array.from({ length: 300 }, () => m.next());
  const [ra, rb, rc] = [draw(a), draw(b), draw(c)];
  assert.deepEqual(ra, rb);
  assert.notDeepEqual(ra, rc);
});

test('every kind is drawn, with the answer a correct server gives', () => {
  const m = mix(1);
  const reqs = Array.from({ length: 2000 }, () => m.next());
  const kinds = new Set(reqs.map((r) => r.kind.split(':')[0]));
  for (const k of ['completion', 'completion-stream', 'chat', 'chat-stream', 'bad-adapter', 'bad-request']) {
    assert.ok(kinds.has(k), k);
  }
  for (const r of reqs) {
    if (r.kind.startsWith('bad-adapter:nan')) assert.deepEqual(r.expect, [400]);
    if (r.kind === 'bad-request:unknown-model') assert.deepEqual(r.expect, [404]);
    if (r.kind === 'bad-request:no-api-key') assert.equal(r.key, null);
    if (r.kind.startsWith('disconnect')) assert.ok(r.abort && r.stream);
    if (r.kind === 'completion') assert.deepEqual(r.expect, [200]);
  }
  const models = new Set(reqs.filter((r) => r.kind === 'completion-stream').map((r) => r.model));
  for (const name of ['base', 's000', 'u000']) assert.ok(models.has(name), name);
  const tooLong = reqs.find((r) => r.kind === 'bad-request:too-long-prompt');
  assert.ok(tooLong && JSON.parse(tooLong.body).prompt.split(' ').length > 64);
});
