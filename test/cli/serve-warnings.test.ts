/** `loraplex serve` warns loudly at start when runtime adapter updates are open to anyone (no key at all). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'loraplex.js');

/** Starts the server, returns its log once it is serving, then kills it. */
async function startupLog(flags: string[]): Promise<string> {
  const cache = await mkdtemp(join(tmpdir(), 'loraplex-warn-'));
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...flags, '--allowed-lora-root', cache], {
    env: { ...process.env, LORAPLEX_CACHE: cache },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      let log = '';
      child.stderr.on('data', (d) => {
        log += d;
        if (log.includes("serving '")) resolve(log);
      });
      child.on('exit', () => reject(new Error(`server exited early:\n${log}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await rm(cache, { recursive: true, force: true });
  }
}

test('runtime updates without any key: a loud warning at start', async () => {
  const log = await startupLog(['--enable-lora-runtime-updates']);
  assert.match(log, /WARNING: runtime adapter updates are enabled with no --admin-key or --api-key/);
});

test('runtime updates behind a key: no warning', async () => {
  const log = await startupLog(['--enable-lora-runtime-updates', '--api-key', 'k']);
  assert.doesNotMatch(log, /WARNING: runtime adapter updates/);
});
