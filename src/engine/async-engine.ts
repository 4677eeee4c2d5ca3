/**
 * The server thread's handle on the engine worker: submit a request, read its tokens as an async stream,
 * abort it. Nothing here computes.
 */
import { Worker } from 'node:worker_threads';
import type { BuildOptions } from './build-engine.ts';
import type { EngineStats } from './llm-engine.ts';
import type { SamplingParams } from './sampling-params.ts';
import type { FinishReason } from './sequence.ts';
import type { FromWorker, ToWorker, WorkerInit } from './worker/protocol.ts';

export interface TokenEvent {
  tokens: number[];
  finishReason: FinishReason | null;
  promptTokens: number;
}

interface Pending {
  push(e: TokenEvent): void;
  fail(err: Error): void;
}

export interface EngineInfo {
  vocabSize: number;
  adapters: string[];
  maxModelLen: number;
  /** Adapters that failed to load (skipInvalidAdapters), with the reason. */
  rejected: { name: string; message: string }[];
}

export class AsyncEngine {
  private nextId = 0;
  /** The engine's latest scheduler state (updated by the worker after every step). */
  stats: EngineStats | null = null;
  private readonly pending = new Map<number, Pending>();
  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => {
      for (const p of this.pending.values()) p.fail(err);
      this.pending.clear();
    });
  }

  static start(build: BuildOptions): Promise<AsyncEngine> {
    const worker = new Worker(new URL('./worker/bootstrap.mjs', import.meta.url), {
      workerData: { build } satisfies WorkerInit,
    });
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          worker.off('message', onMessage);
          resolve(
            new AsyncEngine(worker, {
              vocabSize: m.vocabSize,
              adapters: m.adapters,
              maxModelLen: m.maxModelLen,
              rejected: m.rejected,
            }),
          );
        } else if (m.type === 'failed') {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(new Error(m.message));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  }

  /** Streams the request's tokens; breaking out of the loop (or `signal` aborting) aborts the sequence. */
  async *generate(
    promptIds: number[],
    adapter: string | null,
    params: Partial<SamplingParams>,
    signal?: AbortSignal,
  ): AsyncGenerator<TokenEvent> {
    const id = this.nextId++;
    const queue: TokenEvent[] = [];
    let error: Error | null = null;
    let notify: (() => void) | null = null;
    let done = false;
    this.pending.set(id, {
      push: (e) => {
        queue.push(e);
        notify?.();
      },
      fail: (err) => {
        error = err;
        notify?.();
      },
    });
    const onAbort = () => {
      if (!done) this.post({ type: 'abort', id });
      done = true;
      this.pending.delete(id);
      notify?.();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.post({ type: 'add', id, promptIds, adapter, params });
    try {
      while (true) {
        if (error) throw error;
        const e = queue.shift();
        if (e) {
          yield e;
          if (e.finishReason) {
            done = true;
            return;
          }
          continue;
        }
        if (done) return;
        await new Promise<void>((resolve) => {
          notify = resolve;
        });
        notify = null;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!done) onAbort();
      this.pending.delete(id);
    }
  }

  async close() {
    this.post({ type: 'shutdown' });
    await new Promise((resolve) => this.worker.once('exit', resolve));
  }

  private post(m: ToWorker) {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker) {
    if (m.type === 'tokens') {
      this.pending.get(m.id)?.push({ tokens: m.tokens, finishReason: m.finishReason, promptTokens: m.promptTokens });
    } else if (m.type === 'stats') {
      this.stats = m.stats;
    } else if (m.type === 'rejected') {
      this.pending.get(m.id)?.fail(new RangeError(m.message));
      this.pending.delete(m.id);
    }
  }
}
