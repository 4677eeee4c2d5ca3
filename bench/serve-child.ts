/**
 * `loraplex serve` of one checkout as a child process, ready when /v1/health/ready answers 200
 * (bench:serving starts its servers this way; bench:revisions, those of either checkout).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface Server {
  url: string;
  stop(): Promise<void>;
}

export async function startServer(dir: string, port: number, flags: string[]): Promise<Server> {
  // A server left on the port (say by an aborted run) would answer the readiness poll below for the child,
  // which then fails to bind: every figure would be that other server's.
  const taken = await fetch(`http://127.0.0.1:${port}/v1/health/ready`).then(
    () => true,
    () => false,
  );
  if (taken) throw new Error(`port ${port} already has a server: stop it or choose another port`);
  const child = spawn(process.execPath, [join(dir, 'bin', 'loraplex.js'), 'serve', '--port', String(port), ...flags], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`server exited:\n${log}`);
    const ok = await fetch(`${url}/v1/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok && child.exitCode === null) break;
    if (i > 600) {
      child.kill('SIGTERM');
      throw new Error(`server not ready after 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
