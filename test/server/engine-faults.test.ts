/**
 * Engine faults through the real `loraplex serve`: an adapter at fault fails its own requests (400, the
 * adapter listed as failed) while the others are served; the engine thread dying or hanging fails every
 * pending request with 503 ENGINE_FAILED, turns readiness and liveness 503, is logged, and the process exits 1
 * for its supervisor to restart it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { post, startServe } from './serve-process.ts';

const SERVING = "serving '";

describe('engine faults (real CLI)', () => {
  test('a kernel fault in one adapter fails only its requests; the server serves on', async () => {
    const s = await startServe(['--inject-fault', 'adapter:demo-poet']);
    try {
      await s.waitForLog(SERVING);
      const body = (model: string) => ({ model, prompt: 'Once upon', max_tokens: 8, ignore_eos: true });
      const [poet, base, pirate] = await Promise.all(
        ['demo-poet', 'loraplex-demo', 'demo-pirate'].map((m) => post(s.base, '/v1/completions', body(m))),
      );
      assert.equal(poet.status, 400);
      const error = (await poet.json()).error;
      assert.equal(error.code, 'ADAPTER_BROKEN');
      assert.match(error.message, /adapter 'demo-poet' failed in the engine and is disabled: injected fault/);
      for (const r of [base, pirate]) {
        assert.equal(r.status, 200);
        assert.equal((await r.json()).usage.completion_tokens, 8);
      }
      const again = await post(s.base, '/v1/completions', body('demo-poet'));
      assert.equal(again.status, 400, 'later requests get the reason');
      assert.equal((await again.json()).error.code, 'ADAPTER_BROKEN');
      const models = (await (await fetch(`${s.base}/v1/models`)).json()).data;
      const listed = models.find((m: { id: string }) => m.id === 'demo-poet');
      assert.equal(listed.cache_tier, 'failed');
      assert.match(listed.error, /failed in the engine/);
      assert.equal((await fetch(`${s.base}/v1/health/ready`)).status, 200);
      s.child.kill('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      await s.close();
    }
  });

  test('the engine thread exiting: 503 ENGINE_FAILED, probes 503, logged, exit 1', async () => {
    const s = await startServe(['--inject-fault', 'exit']);
    try {
      await s.waitForLog(SERVING);
      const res = await post(s.base, '/v1/completions', { model: 'loraplex-demo', prompt: 'x', max_tokens: 4 });
      const [ready, live] = await Promise.all([fetch(`${s.base}/v1/health/ready`), fetch(`${s.base}/v1/health/live`)]);
      assert.equal(res.status, 503);
      const error = (await res.json()).error;
      assert.equal(error.code, 'ENGINE_FAILED');
      assert.match(error.message, /the engine thread exited unexpectedly \(code 3\)/);
      assert.equal(ready.status, 503);
      assert.equal(live.status, 503);
      assert.equal((await live.json()).status, 'failed');
      assert.equal((await s.exited).code, 1);
      assert.match(s.log(), /engine failed: the inference engine failed.*exited unexpectedly/);
    } finally {
      await s.close();
    }
  });

  test('a step that never returns: the watchdog fails the stream with ENGINE_FAILED, exit 1', async () => {
    const s = await startServe(['--inject-fault', 'hang', '--engine-stall-timeout', '0.5']);
    try {
      await s.waitForLog(SERVING);
      const started = performance.now();
      const res = await post(s.base, '/v1/completions', {
        model: 'demo-pirate',
        prompt: 'x',
        max_tokens: 4,
        stream: true,
      });
      const text = await res.text();
      assert.match(text, /ENGINE_FAILED/);
      assert.match(text, /no engine step for 0.5 s/);
      const { code, at } = await s.exited;
      assert.equal(code, 1);
      assert.ok(at - started < 10_000, `exited ${Math.round(at - started)} ms after the request`);
      assert.match(s.log(), /engine failed: .*no engine step for 0\.5 s while 1 request\(s\) waited/);
    } finally {
      await s.close();
    }
  });
});
