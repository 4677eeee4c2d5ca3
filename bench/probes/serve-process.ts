/** A `loraplex serve` child process for probes: its port, its stderr log, its exit, and signals. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'loraplex.js');

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  log(): string;
  /** Resolves with the exit code (null: killed by a signal) and how long after `since` it came. */
  exited(since?: number): Promise<{ code: number | null; afterMs: number }>;
  /** Resolves once the log contains `text`. */
  logged(text: string, withinMs?: number): Promise<void>;
  stop(): Promise<void>;
}

let nextPort = 18900 + Math.floor(Math.random() * 500);

export function startServe(flags: string[], env: Record<string, string> = {}): ServeProcess {
  const port = nextPort++;
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), ...flags], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let log = '';
  const waiters: (() => void)[] = [];
  child.stderr?.on('data', (d) => {
    log += d;
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    log: () => log,
    async exited(since = performance.now()) {
      const code = await exit;
      return { code, afterMs: performance.now() - since };
    },
    logged(text, withinMs = 120_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no '${text}' in the log within ${withinMs} ms:\n${log}`)),
          withinMs,
        );
        const check = () => {
          if (log.includes(text)) {
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`server exited before logging '${text}':\n${log}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

/** Resolves once the server answers readiness 200 (bounded). */
export async function ready(server: ServeProcess, withinMs = 120_000) {
  const deadline = performance.now() + withinMs;
  while (performance.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`server exited:\n${server.log()}`);
    const ok = await fetch(`${server.url}/v1/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server not ready within ${withinMs} ms:\n${server.log()}`);
}
