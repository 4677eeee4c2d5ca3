/** Starts a worker thread running a TypeScript module (through tsx, as the main thread does). */
import { Worker } from 'node:worker_threads';

/** `entry`: the module's URL, e.g. `new URL('./engine-worker.ts', import.meta.url)`; `data` reaches it as workerData. */
export function startTsWorker(entry: URL, data: object): Worker {
  return new Worker(new URL('./ts-worker-bootstrap.mjs', import.meta.url), {
    workerData: { ...data, entry: entry.href },
  });
}
