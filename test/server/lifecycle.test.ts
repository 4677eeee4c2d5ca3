/**
 * SIGTERM at any moment ends `loraplex serve` promptly: with --drain-timeout 1 a stream still running at the
 * deadline is cut (with an error event when the route sends one) and the process exits 0; during model loading
 * it exits 0 at once; after an engine fault it exits at once. Time bounds are hang guards far from the values
 * they separate (a 30 s drain timeout), never measurements.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cpuInfo } from '../../src/kernels/native/addon.ts';
import { post, startServe } from './serve-process.ts';

const SERVING = "serving '";

describe('lifecycle (real CLI)', () => {
  test('--drain-timeout 1: a long stream is cut at the deadline and the process exits 0', async () => {
    const s = await startServe(['--drain-timeout', '1']);
    try {
      await s.waitForLog(SERVING);
      const res = await post(s.base, '/v1/completions', {
        model: 'demo-poet',
        prompt: 'Once',
        max_tokens: 4000,
        stream: true,
        ignore_eos: true,
      });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let body = decoder.decode((await reader.read()).value);
      const signalled = performance.now();
      s.child.kill('SIGTERM');
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        body += decoder.decode(chunk.value);
      const { code, at } = await s.exited;
      assert.equal(code, 0);
      // The cut itself is pinned by the SERVER_DRAINING event below; the bound only says the process did not hang
      // (serve's own fallback exits 1.8 s after the deadline), with room for a loaded machine.
      assert.ok(at - signalled < 15_000, `exited ${Math.round(at - signalled)} ms after SIGTERM`);
      assert.doesNotMatch(body, /"finish_reason":"length"/, 'the stream did not run to its end');
      assert.match(body, /data: \{"error":\{[^\n]*"code":"SERVER_DRAINING"\}\}\n\ndata: \[DONE\]\n\n$/);
    } finally {
      await s.close();
    }
  });

  test('SIGTERM while the model loads: exit 0 at once', async () => {
    const s = await startServe(['--inject-fault', 'hang-load', '--drain-timeout', '30']);
    try {
      await s.waitForLog('loading the model');
      const ready = await fetch(`${s.base}/v1/health/ready`);
      assert.equal(ready.status, 503);
      assert.equal((await ready.json()).status, 'loading');
      const signalled = performance.now();
      s.child.kill('SIGTERM');
      const { code, at } = await s.exited;
      assert.equal(code, 0);
      // At once: well before the 30 s drain timeout it would otherwise wait out (a bound, not a measurement).
      assert.ok(at - signalled < 15_000, `exited ${Math.round(at - signalled)} ms after SIGTERM`);
      assert.match(s.log(), /SIGTERM while loading/);
    } finally {
      await s.close();
    }
  });

  test('SIGTERM after an engine fault: exit at once, whatever the drain timeout', async () => {
    const s = await startServe(['--inject-fault', 'exit', '--drain-timeout', '30']);
    try {
      await s.waitForLog(SERVING);
      const res = await post(s.base, '/v1/completions', { model: 'loraplex-demo', prompt: 'x', max_tokens: 4 });
      assert.equal(res.status, 503);
      const signalled = performance.now();
      s.child.kill('SIGTERM');
      const { code, at } = await s.exited;
      assert.ok(code === 0 || code === 1, `exit code ${code}`);
      // At once: well before the 30 s drain timeout it would otherwise wait out (a bound, not a measurement).
      assert.ok(at - signalled < 15_000, `exited ${Math.round(at - signalled)} ms after SIGTERM`);
    } finally {
      await s.close();
    }
  });

  test('serve --threads 1 --isa X (and LORAPLEX_BF16_DOT) reach the native kernels', async () => {
    // The dot path needs the avx512bf16 ISA: where this CPU has it, ask for it and expect the path on.
    const dot = cpuInfo().avx512Bf16;
    const isa = dot ? 'avx512bf16' : 'scalar';
    const s = await startServe(['--threads', '1', '--isa', isa], { LORAPLEX_BF16_DOT: '1' });
    try {
      await s.waitForLog(SERVING);
      const line = s
        .log()
        .split('\n')
        .find((l) => l.includes('native kernels configured'));
      assert.ok(line, s.log());
      const { threads, isa: active, bf16Dot } = JSON.parse(line);
      assert.deepEqual({ threads, isa: active, bf16Dot }, { threads: 1, isa, bf16Dot: dot });
      const res = await post(s.base, '/v1/completions', { model: 'demo-chef', prompt: 'x', max_tokens: 3 });
      assert.equal(res.status, 200);
      s.child.kill('SIGTERM');
      assert.equal((await s.exited).code, 0);
    } finally {
      await s.close();
    }
  });
});
