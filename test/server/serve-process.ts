/**
 * The real `loraplex serve` (the built-in demo) as a child process, for tests of what only a process shows:
 * its exit code and timing, its log. Synchronises on log lines and exits, never on sleeps.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'loraplex.js');

export interface ServeProcess {
  child: ChildProcessWithoutNullStreams;
  base: string;
  /** Everything logged so far. */
  log(): string;
  /** Resolves once the log contains `text`; rejects if the process exits first. */
  waitForLog(text: string): Promise<void>;
  /** The exit code, and when the process exited (performance.now()). */
  exited: Promise<{ code: number | null; at: number }>;
  close(): Promise<void>;
}

export async function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const cache = await mkdtemp(join(tmpdir(), 'loraplex-serve-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [bin, 'serve', '--port', String(port), ...args], {
    env: { ...process.env, LORAPLEX_CACHE: cache, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let log = '';
  const watchers: { text: string; resolve(): void }[] = [];
  child.stderr.on('data', (d) => {
    log += d;
    for (const w of [...watchers]) {
      if (log.includes(w.text)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on('exit', (code) => resolve({ code, at: performance.now() })),
  );
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    log: () => log,
    waitForLog: (text) =>
      new Promise<void>((resolve, reject) => {
        if (log.includes(text)) return resolve();
        watchers.push({ text, resolve });
        void exited.then(({ code }) => reject(new Error(`server exited (${code}) before logging '${text}':\n${log}`)));
      }),
    exited,
    async close() {
      child.kill('SIGKILL');
      await rm(cache, { recursive: true, force: true });
    },
  };
}

export function post(base: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}
