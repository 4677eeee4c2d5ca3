/**
 * The two servers on one GGUF file, started one at a time (the CPU is shared): llama.cpp's llama-server
 * (one slot, greedy, `-t` threads, KV cache f32 by default like loraplex's) and `loraplex serve --model x.gguf`.
 * Each answers the same few questions through a small client (clients.ts).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Running {
  url: string;
  stop(): Promise<void>;
}

export interface LlamaServerOptions {
  bin: string;
  model: string;
  port: number;
  threads: number;
  /** KV cache type for keys and values: f32 (loraplex's) or llama.cpp's default f16. */
  kv: 'f32' | 'f16';
  context: number;
  logFile: string;
}

export async function startLlamaServer(o: LlamaServerOptions): Promise<Running> {
  const args = ['--host', '127.0.0.1', '--port', String(o.port), '-m', o.model, '-t', String(o.threads)];
  args.push('-tb', String(o.threads), '-np', '1', '-c', String(o.context), '--temp', '0', '--no-webui');
  args.push('-ctk', o.kv, '-ctv', o.kv);
  // 503 while the model loads, 200 once it serves.
  return startLogged(o.bin, args, `http://127.0.0.1:${o.port}`, '/health', o.logFile);
}

/** A child whose output goes to `logFile`, ready once `healthPath` answers 200 (a 1B GGUF loads slowly on a busy box). */
async function startLogged(cmd: string, args: string[], url: string, healthPath: string, logFile: string) {
  const log = createWriteStream(logFile);
  await new Promise((resolve) => log.once('open', resolve));
  const child = spawn(cmd, args, { stdio: ['ignore', log, log] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    log.end();
  };
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
      throw new Error(`${cmd} exited (${child.exitCode ?? child.signalCode}):\n${tail}`);
    }
    const ok = await fetch(`${url}${healthPath}`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return { url, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${cmd} not ready after 300 s (log: ${logFile})`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

export function startLoraplex(
  root: string,
  model: string,
  port: number,
  threads: number,
  logFile: string,
): Promise<Running> {
  const args = [join(root, 'bin', 'loraplex.js'), 'serve', '--port', String(port), '--model', model];
  args.push('--threads', String(threads), '--no-ui');
  return startLogged(process.execPath, args, `http://127.0.0.1:${port}`, '/v1/health/ready', logFile);
}
