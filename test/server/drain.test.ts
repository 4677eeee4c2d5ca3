/**
 * SIGTERM drains: readiness turns 503 and new requests get 503 while a running stream finishes in full; then
 * the process exits 0. Runs the real `loraplex serve` (the built-in demo) as a child process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'loraplex.js');

test('SIGTERM: readiness 503, new requests 503, the running stream completes, exit 0', async () => {
  const cache = await mkdtemp(join(tmpdir(), 'loraplex-drain-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [bin, 'serve', '--port', String(port), '--drain-timeout', '60'], {
    env: { ...process.env, LORAPLEX_CACHE: cache },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    /** Resolves once the server has logged `text`: its log is the event, never a sleep. */
    const logged = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!err.includes(text)) return;
          child.stderr.off('data', check);
          resolve();
        };
        child.stderr.on('data', check);
        child.once('exit', () => reject(new Error(`server exited before logging '${text}':\n${err}`)));
        check();
      });
    await logged("serving '");
    const base = `http://127.0.0.1:${port}`;
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo-poet', prompt: 'Once', max_tokens: 1500, stream: true, ignore_eos: true }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let body = decoder.decode((await reader.read()).value);

    child.kill('SIGTERM');
    // Logged in the same turn that starts the drain, so every request the server reads after it sees draining.
    await logged('SIGTERM: draining');
    assert.equal((await fetch(`${base}/v1/health/ready`)).status, 503, 'readiness fails while draining');
    const refused = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'loraplex-demo', prompt: 'x', max_tokens: 2 }),
    });
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).error.code, 'SERVER_DRAINING');

    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) body += decoder.decode(chunk.value);
    assert.match(body, /"finish_reason":"length"/);
    assert.match(body, /data: \[DONE\]\n\n$/);
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
    await rm(cache, { recursive: true, force: true });
  }
});
