/**
 * Adapter loads on their own thread: the engine thread posts (name, dir) and gets the packed weights back
 * as transferred buffers (no copy). Loads run one at a time, in request order.
 */
import type { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../../model/config.ts';
import { deserializeError, type SerializedError } from '../../observability/errors.ts';
import { startTsWorker } from '../../runtime/ts-worker.ts';
import type { AdapterLoader } from './adapter-loader.ts';
import type { PackedWithSummary } from './load-packed.ts';

export interface LoaderInit {
  base: ModelConfig;
  maxLoraRank: number;
}

export type ToLoader = { id: number; name: string; dir: string };
export type FromLoader =
  | { id: number; ok: true; result: PackedWithSummary }
  | { id: number; ok: false; error: SerializedError };

export class ThreadAdapterLoader implements AdapterLoader {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(r: PackedWithSummary): void; reject(e: Error): void }>();
  /** Set once the thread is closed or has died: every load then fails at once instead of hanging. */
  private stopped: Error | null = null;

  constructor(init: LoaderInit) {
    this.worker = startTsWorker(new URL('./loader-worker.ts', import.meta.url), init);
    this.worker.on('message', (m: FromLoader) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.ok) p.resolve(m.result);
      else p.reject(deserializeError(m.error));
    });
    this.worker.on('error', (err) => this.stop(err));
    this.worker.on('exit', (code) => this.stop(new Error(`the adapter loader thread exited (code ${code})`)));
    this.worker.unref(); // an idle loader never keeps its thread alive; a pending load does
  }

  load(name: string, dir: string): Promise<PackedWithSummary> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ id, name, dir } satisfies ToLoader);
    });
  }

  async close() {
    this.stop(new Error('the adapter loader is closed'));
    await this.worker.terminate();
  }

  private stop(reason: Error) {
    this.stopped ??= reason;
    for (const p of this.pending.values()) p.reject(this.stopped);
    this.pending.clear();
  }
}
