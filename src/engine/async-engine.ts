/**
 * The server thread's handle on the engine worker: submit a request, read its tokens as an async stream,
 * abort it. Nothing here computes.
 */
import type { Worker } from 'node:worker_threads';
import type { AdapterInfo } from '../adapters/cache/adapter-manager.ts';
import type { AdapterChoice } from '../adapters/compose.ts';
import type { NativeState } from '../kernels/native/config.ts';
import { createError, deserializeError, type LoraplexError } from '../observability/errors.ts';
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
  /** With the first token, when the request asked for prompt logprobs: one per prompt token (null at 0). */
  promptLogprobs?: (TokenLogprobs | null)[];
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
  /** The native kernels' configuration in effect (null: the reference backend). */
  native: NativeState | null;
}

export interface StartOptions {
  loraRefreshSeconds?: number;
  onProgress?: BuildProgress;
  /**
   * Seconds requests may wait with no engine step before the engine counts as stalled (failed). Keep it
   * above the adapter-load timeout: requests may wait that long for a load. Default 120; 0: no watchdog.
   */
  stallTimeoutSeconds?: number;
  /** Aborting stops the engine thread while it loads; start() then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Test seam: sees every message from the engine thread once it is ready, before it is handled. */
  onWorkerMessage?: (m: FromWorker) => void;
}

export const DEFAULT_STALL_TIMEOUT_SECONDS = 120;

export class AsyncEngine {
  private nextId = 0;
  /** The engine's latest scheduler state (updated by the worker after every step). */
  stats: EngineStats | null = null;
  /** The servable adapters and their cache tiers, as the worker last reported them. */
  adapters: AdapterInfo[];
  /** Called for every adapter load the worker finishes (metrics). */
  onAdapterLoad: ((name: string, seconds: number, ok: boolean) => void) | null = null;
  /** Set once the engine has failed (thread died, stalled, or a step it could not contain): ENGINE_FAILED. */
  fault: LoraplexError | null = null;
  /** Called once, when the engine fails; every pending request has already been failed with the same error. */
  onFault: ((error: LoraplexError) => void) | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly adminPending = new Map<number, { resolve(r: AdminResult): void; reject(e: Error): void }>();
  /** `until` callers, checked after every message from the engine thread. */
  private readonly conditions = new Set<{ holds(): boolean; resolve(): void; reject(e: Error): void }>();
  private closing = false;
  private readonly exited: Promise<void>;
  private readonly watchdog: NodeJS.Timeout | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
    adapters: AdapterInfo[],
    progress: Int32Array,
    stallTimeoutSeconds: number,
    onWorkerMessage?: (m: FromWorker) => void,
  ) {
    this.adapters = adapters;
    let lastTurn = Atomics.load(progress, 0);
    let lastProgress = performance.now();
    worker.on('message', (m: FromWorker) => {
      lastProgress = performance.now();
      onWorkerMessage?.(m);
      this.onMessage(m);
      for (const c of this.conditions) {
        if (!c.holds()) continue;
        this.conditions.delete(c);
        c.resolve();
      }
    });
    worker.on('error', (err) => this.fail(`the engine thread crashed: ${err.message}`));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        clearInterval(this.watchdog ?? undefined);
        if (!this.closing) this.fail(`the engine thread exited unexpectedly (code ${code})`);
        resolve();
      }),
    );
    if (stallTimeoutSeconds > 0) {
      // A step that never returns (or a loop that stopped turning) while requests wait: nothing else would say so.
      const check = () => {
        const turn = Atomics.load(progress, 0);
        const now = performance.now();
        const waiting = this.pending.size + this.adminPending.size;
        if (turn !== lastTurn || waiting === 0) {
          lastTurn = turn;
          lastProgress = now;
        } else if (now - lastProgress > stallTimeoutSeconds * 1000) {
          this.fail(`no engine step for ${stallTimeoutSeconds} s while ${waiting} request(s) waited`);
        }
      };
      this.watchdog = setInterval(check, Math.min(1000, (stallTimeoutSeconds * 1000) / 4));
      this.watchdog.unref();
    }
  }

  static start(build: BuildOptions, opts: StartOptions = {}): Promise<AsyncEngine> {
    const progress = new SharedArrayBuffer(4);
    const worker = startTsWorker(new URL('./worker/engine-worker.ts', import.meta.url), {
      build: { ...build, loaderThread: true },
      loraRefreshSeconds: opts.loraRefreshSeconds,
      progress,
    } satisfies WorkerInit);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        settle();
        void worker.terminate();
        reject(opts.signal?.reason ?? new Error('the engine was stopped while loading'));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        opts.signal?.removeEventListener('abort', onAbort);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          settle();
          resolve(
            new AsyncEngine(
              worker,
              { vocabSize: m.vocabSize, maxModelLen: m.maxModelLen, rejected: m.rejected, native: m.native },
              m.adapters,
              new Int32Array(progress),
              opts.stallTimeoutSeconds ?? DEFAULT_STALL_TIMEOUT_SECONDS,
              opts.onWorkerMessage,
            ),
          );
        } else if (m.type === 'progress') {
          opts.onProgress?.(m.stage, m.done, m.total);
        } else if (m.type === 'failed') {
          settle();
          void worker.terminate();
          reject(new Error(m.message));
        }
      };
      const onError = (err: Error) => {
        settle();
        reject(err);
      };
      const onExit = (code: number) => {
        settle();
        reject(new Error(`the engine thread exited (code ${code}) before it was ready`));
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      if (opts.signal?.aborted) onAbort();
    });
  }

  /** Streams the request's tokens; breaking out of the loop (or `signal` aborting) aborts the sequence. */
  async *generate(
    promptIds: number[],
    adapter: AdapterChoice,
    params: Partial<SamplingParams>,
    signal?: AbortSignal,
  ): AsyncGenerator<TokenEvent> {
    if (this.fault) throw this.fault;
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
    if (this.fault) return Promise.reject(this.fault);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.adminPending.set(id, { resolve, reject });
      this.post({ type: 'admin', id, request });
    });
  }

  /**
   * Resolves once `condition` holds: now, or after the engine thread's message that makes it hold (stats,
   * adapters). Rejects when the engine fails. Lets callers (and tests) wait for a state, never poll for it.
   */
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    if (this.fault) return Promise.reject(this.fault);
    return new Promise((resolve, reject) => this.conditions.add({ holds: condition, resolve, reject }));
  }

  /**
   * Test seam: the engine thread takes at most `steps` more steps, then waits (still taking requests, aborts
   * and admin calls) until `holdSteps(null)`. Lets a test set up "one running, two waiting" without timing.
   */
  holdSteps(steps: number | null) {
    this.post({ type: 'hold', steps });
  }

  /** Stops the engine thread: asks it to finish its step and exit, and terminates it after `graceMs`. */
  async close(graceMs = 1000) {
    this.closing = true;
    clearInterval(this.watchdog ?? undefined);
    this.post({ type: 'shutdown' });
    const timer = setTimeout(() => void this.worker.terminate(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The engine cannot serve any more: every pending request and admin call fails with ENGINE_FAILED. */
  private fail(reason: string) {
    if (this.fault || this.closing) return;
    const error = createError('ENGINE_FAILED', { reason });
    this.fault = error;
    clearInterval(this.watchdog ?? undefined);
    for (const p of this.pending.values()) p.fail(error);
    this.pending.clear();
    for (const p of this.adminPending.values()) p.reject(error);
    this.adminPending.clear();
    for (const c of this.conditions) c.reject(error);
    this.conditions.clear();
    void this.worker.terminate();
    this.onFault?.(error);
  }

  private post(m: ToWorker) {
    if (!this.fault) this.worker.postMessage(m);
  }

  private reject(id: number, error: Error) {
    this.pending.get(id)?.fail(error);
    this.pending.delete(id);
  }

  private onMessage(m: FromWorker) {
    if (m.type === 'step') {
      if (m.stats) this.stats = m.stats;
      if (m.adapters) this.adapters = m.adapters;
      for (const r of m.rejected) this.reject(r.id, deserializeError(r.error));
      for (const t of m.tokens) {
        const logprobs = t.logprobs ? [t.logprobs] : undefined;
        const event: TokenEvent = {
          tokens: [t.token],
          finishReason: t.finishReason,
          promptTokens: t.promptTokens,
          logprobs,
        };
        if (t.promptLogprobs) event.promptLogprobs = t.promptLogprobs;
        this.pending.get(t.id)?.push(event);
      }
    } else if (m.type === 'stats') {
      this.stats = m.stats;
    } else if (m.type === 'rejected') {
      this.reject(m.id, deserializeError(m.error));
    } else if (m.type === 'adapters') {
      this.adapters = m.adapters;
    } else if (m.type === 'adapterLoad') {
      this.onAdapterLoad?.(m.name, m.seconds, m.ok);
    } else if (m.type === 'fatal') {
      this.fail(m.message);
    } else if (m.type === 'adminDone' || m.type === 'adminFailed') {
      const p = this.adminPending.get(m.id);
      this.adminPending.delete(m.id);
      if (m.type === 'adminDone') p?.resolve(m.result);
      else p?.reject(deserializeError(m.error));
    }
  }
}
