/**
 * Adapter loads on their own thread: the engine thread posts (name, dir, root) and gets the packed weights
 * back as transferred buffers (no copy). Loads run one at a time, in request order, each within a time
 * limit: a load that does not finish in time fails with ADAPTER_LOAD_TIMEOUT and its thread is replaced
 * (a stuck read cannot be cancelled, only abandoned), so one bad adapter never wedges the loads after it.
 */
import type { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../../model/config.ts';
import { createError, deserializeError, type SerializedError } from '../../observability/errors.ts';
import { startTsWorker } from '../../runtime/ts-worker.ts';
import type { AdapterLoader } from './adapter-loader.ts';
import type { PackedWithSummary } from './load-packed.ts';

export const DEFAULT_ADAPTER_LOAD_TIMEOUT_S = 60;

export interface LoaderInit {
  base: ModelConfig;
  maxLoraRank: number;
  /** The base model's directory, read again for DoRA adapters' norms (absent: DoRA adapters are refused). */
  modelDir?: string;
  /** Tests only: loads of this adapter name never finish (to prove a timeout replaces the thread). */
  neverFinishForTest?: string;
}

export interface ThreadLoaderOptions extends LoaderInit {
  /** Seconds one load may take (default 60). */
  loadTimeoutSeconds?: number;
  /** Tests only: told when the thread has received a load and started it (its clock starts then). */
  onLoadStartedForTest?: (name: string) => void;
}

export type ToLoader = { id: number; name: string; dir: string; root?: string };
export type FromLoader =
  | { id: number; started: true }
  | { id: number; ok: true; result: PackedWithSummary }
  | { id: number; ok: false; error: SerializedError };

interface Job {
  id: number;
  name: string;
  dir: string;
  root?: string;
  resolve(r: PackedWithSummary): void;
  reject(e: Error): void;
}

export class ThreadAdapterLoader implements AdapterLoader {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly queue: Job[] = [];
  private current: Job | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Set once closed: every load then fails at once. */
  private closed: Error | null = null;
  private readonly timeoutMs: number;
  /** Threads replaced after a timeout or a crash. */
  restarts = 0;

  constructor(private readonly init: ThreadLoaderOptions) {
    this.timeoutMs = (init.loadTimeoutSeconds ?? DEFAULT_ADAPTER_LOAD_TIMEOUT_S) * 1000;
    this.worker = this.spawn();
  }

  load(name: string, dir: string, root?: string): Promise<PackedWithSummary> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, name, dir, root, resolve, reject });
      this.pump();
    });
  }

  async close() {
    this.closed ??= new Error('the adapter loader is closed');
    this.clearTimer();
    for (const job of [this.current, ...this.queue]) job?.reject(this.closed);
    this.current = null;
    this.queue.length = 0;
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private spawn(): Worker {
    const { base, maxLoraRank, modelDir, neverFinishForTest } = this.init;
    const w = startTsWorker(new URL('./loader-worker.ts', import.meta.url), {
      base,
      maxLoraRank,
      modelDir,
      neverFinishForTest,
    } satisfies LoaderInit);
    w.on('message', (m: FromLoader) => {
      const job = this.current;
      if (w !== this.worker || !job || job.id !== m.id) return;
      // The clock runs from the load's start on the thread: a thread still starting up is not the adapter's fault.
      if ('started' in m) {
        this.timer = setTimeout(() => this.timedOut(job), this.timeoutMs);
        this.init.onLoadStartedForTest?.(job.name);
        return;
      }
      this.done();
      if (m.ok) job.resolve(m.result);
      else job.reject(deserializeError(m.error));
    });
    w.on('error', (err) => {
      if (w === this.worker) this.replace(err);
    });
    w.on('exit', (code) => {
      if (w === this.worker) this.replace(new Error(`the adapter loader thread exited (code ${code})`));
    });
    w.unref(); // an idle loader never keeps its thread alive; a pending load does
    return w;
  }

  /** Posts the next load when none is running. */
  private pump() {
    if (this.current || this.closed) return;
    const job = this.queue.shift();
    if (!job) {
      this.worker?.unref();
      return;
    }
    this.worker ??= this.spawn();
    this.current = job;
    this.worker.ref();
    this.worker.postMessage({ id: job.id, name: job.name, dir: job.dir, root: job.root } satisfies ToLoader);
  }

  private done() {
    this.clearTimer();
    this.current = null;
    this.pump();
  }

  private timedOut(job: Job) {
    if (this.current !== job) return;
    this.replace(createError('ADAPTER_LOAD_TIMEOUT', { name: job.name, seconds: this.timeoutMs / 1000 }));
  }

  /** The thread is stuck or gone: fail its load, abandon it, and carry on with a fresh one. */
  private replace(reason: Error) {
    const job = this.current;
    const old = this.worker;
    this.worker = null;
    this.restarts++;
    void old?.terminate();
    this.clearTimer();
    this.current = null;
    job?.reject(reason);
    this.pump();
  }

  private clearTimer() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
