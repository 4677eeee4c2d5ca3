/**
 * The engine's thread: builds the engine, then loops — take new requests and aborts, step, post tokens —
 * so the HTTP thread never waits on a forward pass. Idle, it sleeps until a message arrives.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { buildEngine } from '../build-engine.ts';
import type { Sequence } from '../sequence.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const { build } = workerData as WorkerInit;

const built = await buildEngine(build).catch((e: Error) => {
  post({ type: 'failed', message: e.message });
  return null;
});

if (built) {
  const { engine, config } = built;
  const seqs = new Map<number, Sequence>();
  const idOf = new Map<Sequence, number>();
  let wake: (() => void) | null = null;
  let running = true;

  port.on('message', (m: ToWorker) => {
    if (m.type === 'add') {
      try {
        const seq = engine.addRequest({ promptIds: m.promptIds, adapter: m.adapter, params: m.params });
        seqs.set(m.id, seq);
        idOf.set(seq, m.id);
      } catch (e) {
        post({ type: 'rejected', id: m.id, message: (e as Error).message });
      }
    } else if (m.type === 'abort') {
      const seq = seqs.get(m.id);
      if (seq) {
        engine.abort(seq);
        seqs.delete(m.id);
        idOf.delete(seq);
      }
    } else {
      running = false;
    }
    wake?.();
  });

  post({
    type: 'ready',
    modelName: build.modelDir,
    vocabSize: config.vocabSize,
    adapters: engine.adapterNames(),
    maxModelLen: engine.options.maxModelLen,
    rejected: built.rejected,
  });

  let lastStats = '';
  const postStats = () => {
    const stats = engine.stats();
    const key = JSON.stringify(stats);
    if (key !== lastStats) post({ type: 'stats', stats });
    lastStats = key;
  };

  while (running) {
    postStats();
    if (!engine.hasUnfinished()) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
      continue;
    }
    const outputs = engine.step();
    for (const out of outputs) {
      const id = idOf.get(out.seq);
      if (id === undefined || out.newToken === null) continue;
      post({
        type: 'tokens',
        id,
        tokens: [out.newToken],
        finishReason: out.finished ? out.seq.finishReason : null,
        promptTokens: out.seq.promptIds.length,
      });
      if (out.finished) {
        seqs.delete(id);
        idOf.delete(out.seq);
      }
    }
    // Let queued messages (new requests, aborts) in between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  process.exit(0);
}
