/** The loader thread's body (see loader-thread.ts): one load at a time, results transferred, errors as data. */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../../observability/errors.ts';
import { projectionsFromModelDir } from '../base-projections.ts';
import { loadPackedAdapter } from './load-packed.ts';
import type { FromLoader, LoaderInit, ToLoader } from './loader-thread.ts';

const port = parentPort!;
const { base, maxLoraRank, modelDir, neverFinishForTest } = workerData as LoaderInit;
const baseWeights = modelDir === undefined ? undefined : projectionsFromModelDir(modelDir, base);

port.on('message', async (m: ToLoader) => {
  port.postMessage({ id: m.id, started: true } satisfies FromLoader);
  try {
    if (m.name === neverFinishForTest) await new Promise(() => {});
    const result = await loadPackedAdapter(m.name, m.dir, base, maxLoraRank, m.root, baseWeights);
    const p = result.packed;
    const transfer = [p.weights, p.rank, p.offsetA, p.offsetB, p.scale, p.inFeatures, p.outFeatures].map(
      (a) => a.buffer as ArrayBuffer,
    );
    port.postMessage({ id: m.id, ok: true, result } satisfies FromLoader, transfer);
  } catch (e) {
    port.postMessage({ id: m.id, ok: false, error: serializeError(e) } satisfies FromLoader);
  }
});
