/**
 * The server thread's handle on the engine worker: submit a request, read its tokens as an async stream,
 * abort it. Nothing here computes.
 */
import type { Worker } from 'node:worker_threads';
import type { AdapterInfo } from '../adapters/cache/adapter-manager.ts';
import { deserializeError } from '../observability/errors.ts';
import { startTsWorker } from '../runtime/ts-worker.ts';
import type { BuildOptions, BuildProgress } from './build-engine.ts';
import type { EngineStats } from './llm-engine.ts';
import type { TokenLogprobs } from './logprobs.ts';
import type { SamplingParams } from './sampling-params.ts';
import type { FinishReason } from './sequence.ts';
import type { AdminOp, AdminResult, FromWorker, ToWorker, WorkerInit } from './worker/protocol.ts';

export interface TokenEvent {
  tokens: number[];
  finishReason: FinishReason | null;
  promptTokens: number;
  /** Aligned with tokens, when the request asked for logprobs. */
  logprobs?: TokenLogprobs[];
}

interface Pending {
  push(e: TokenEvent): void;
  fail(err: Error): void;
}

export interface EngineInfo {
  vocabSize: number;
  maxModelLen: number;
  /** Adapters that failed to load (skipInvalidAdapters), with the reason. */
  rejected: { name: string; message: string }[];
}

export class AsyncEngine {
  private nextId = 0;
  /** The engine's latest scheduler state (updated by the worker after every step). */
  stats: EngineStats | null = null;
  /** The servable adapters and their cache tiers, as the worker last reported them. */
  adapters: AdapterInfo[];
  /** Called for every adapter load the worker finishes (metrics). */
  onAdapterLoad: ((name: string, seconds: number, ok: boolean) => void) | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly adminPending = new Map<number, { resolve(r: AdminResult): void; reject(e: Error): void }>();
  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
    adapters: AdapterInfo[],
  ) {
    this.adapters = adapters;
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => {
      for (const p of this.pending.values()) p.fail(err);
      this.pending.clear();
      for (const p of this.adminPending.values()) p.reject(err);
      this.adminPending.clear();
    });
  }

  static start(
    build: BuildOptions,
    opts: { loraRefreshSeconds?: number; onProgress?: BuildProgress } = {},
  ): Promise<AsyncEngine> {
    const worker = startTsWorker(new URL('./worker/engine-worker.ts', import.meta.url), {
      build: { ...build, loaderThread: true },
      loraRefreshSeconds: opts.loraRefreshSeconds,
    } satisfies WorkerInit);
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          worker.off('message', onMessage);
          resolve(
            new AsyncEngine(
              worker,
              { vocabSize: m.vocabSize, maxModelLen: m.maxModelLen, rejected: m.rejected },
              m.adapters,
            ),
          );
        } else if (m.type === 'progress') {
          opts.onProgress?.(m.stage, m.done, m.total);
        } else if (m.type === 'failed') {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(new Error(m.message));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the engine thread exited (code ${code}) before it was ready`)));
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

  /** Runs an adapter operation of the admin API on the engine thread; rejects with its catalogue error. */
  admin(request: AdminOp): Promise<AdminResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.adminPending.set(id, { resolve, reject });
      this.post({ type: 'admin', id, request });
    });
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
      this.pending
        .get(m.id)
        ?.push({ tokens: m.tokens, finishReason: m.finishReason, promptTokens: m.promptTokens, logprobs: m.logprobs });
    } else if (m.type === 'stats') {
      this.stats = m.stats;
    } else if (m.type === 'rejected') {
      this.pending.get(m.id)?.fail(deserializeError(m.error));
      this.pending.delete(m.id);
    } else if (m.type === 'adapters') {
      this.adapters = m.adapters;
    } else if (m.type === 'adapterLoad') {
      this.onAdapterLoad?.(m.name, m.seconds, m.ok);
    } else if (m.type === 'adminDone' || m.type === 'adminFailed') {
      const p = this.adminPending.get(m.id);
      this.adminPending.delete(m.id);
      if (m.type === 'adminDone') p?.resolve(m.result);
      else p?.reject(deserializeError(m.error));
    }
  }
}
