/**
 * A peer server started from its script (peers/<peer>/serve.sh) as a child process in its own process group,
 * ready when a health URL answers 200; stop() ends the whole group (vLLM forks engine processes). Its output
 * goes to a log file, the tail of which a failed start reports.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

export interface ChildServer {
  url: string;
  stop(): Promise<void>;
}

export interface ChildSpec {
  script: string;
  env: Record<string, string>;
  port: number;
  /** Path answering 200 once the model is loaded (llama.cpp answers 503 while loading). */
  healthPath: string;
  logFile: string;
  /** vLLM takes minutes to start on two busy cores. */
  readyTimeoutSeconds: number;
}

export async function logTail(file: string, lines = 25): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Process groups still running: ended when this process exits, however it exits. */
const live = new Set<number>();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
});

export async function startChild(spec: ChildSpec): Promise<ChildServer> {
  const url = `http://127.0.0.1:${spec.port}`;
  const taken = await fetch(`${url}${spec.healthPath}`).then(
    () => true,
    () => false,
  );
  if (taken) throw new Error(`port ${spec.port} already answers (another server?): pick another with --port`);
  const log = createWriteStream(spec.logFile);
  await new Promise((resolve) => log.once('open', resolve));
  const child = spawn('bash', [spec.script], {
    env: { ...process.env, ...spec.env, PORT: String(spec.port) },
    stdio: ['ignore', log, log],
    detached: true,
  });
  if (child.pid !== undefined) live.add(child.pid);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child.pid as number);
      resolve();
    }),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const killer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // already gone
        }
      }, 15_000);
      await exited;
      clearTimeout(killer);
    }
    log.end();
  };
  const deadline = Date.now() + spec.readyTimeoutSeconds * 1000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      log.end();
      throw new Error(`${spec.script} exited (${child.exitCode ?? child.signalCode}):\n${await logTail(spec.logFile)}`);
    }
    const ok = await fetch(`${url}${spec.healthPath}`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return { url, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${spec.script} not ready after ${spec.readyTimeoutSeconds} s:\n${await logTail(spec.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
