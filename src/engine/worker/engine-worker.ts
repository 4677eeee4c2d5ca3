/**
 * The engine's thread: builds the engine, then loops — take new requests and aborts, step, post each step's tokens in one message —
 * so the HTTP thread never waits on a forward pass. Idle (or with every waiting request waiting for its
 * adapter's load), it sleeps until a message or a finished load wakes it. It also rescans the adapter
 * store and runs the admin API's adapter operations.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AdapterInfo } from '../../adapters/cache/adapter-manager.ts';
import { nativeState } from '../../kernels/native/config.ts';
import { createError, serializeError } from '../../observability/errors.ts';
import { buildEngine } from '../build-engine.ts';
import { hangForever } from '../faults.ts';
import type { EngineStats, LLMEngine } from '../llm-engine.ts';
import type { Sequence } from '../sequence.ts';
import type { AdminOp, AdminResult, FromWorker, ToWorker, WorkerInit } from './protocol.ts';
import { endedIds, stepMessage } from './step-message.ts';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const { build, loraRefreshSeconds = 0, progress } = workerData as WorkerInit;
const progressCounter = progress ? new Int32Array(progress) : null;

if (build.faults?.hangOnLoad) hangForever();
const built = await buildEngine(build, (stage, done, total) => post({ type: 'progress', stage, done, total })).catch(
  (e: Error) => {
    post({ type: 'failed', message: e.message });
    return null;
  },
);

if (built) {
  const { engine, config, store } = built;
  const seqs = new Map<number, Sequence>();
  const idOf = new Map<Sequence, number>();
  let wake: (() => void) | null = null;
  let running = true;
  /** Steps left before the loop holds (AsyncEngine.holdSteps); null: no hold. */
  let stepsLeft: number | null = null;
  let lastStats = '';
  let lastAdapters = -1;
  const wakeUp = () => wake?.();
  engine.adapters.events.ready = wakeUp;
  const onFailed = engine.adapters.events.failed;
  engine.adapters.events.failed = (key, error) => {
    onFailed(key, error);
    wakeUp();
  };
  engine.adapters.events.loadTimed = (name, seconds, ok) => post({ type: 'adapterLoad', name, seconds, ok });

  /** Store rescans: new names served, deleted ones dropped (running sequences keep their weights). */
  const rescan = async () => {
    if (!store) return { added: [], removed: [], changed: [] };
    const result = engine.adapters.syncStore(await store.list());
    wakeUp();
    return result;
  };
  if (store && loraRefreshSeconds > 0) {
    setInterval(() => {
      rescan().catch((e: Error) => console.error(`loraplex: adapter store rescan failed: ${e.message}`));
    }, loraRefreshSeconds * 1000).unref();
  }

  const admin = (id: number, request: AdminOp) => {
    runAdmin(engine, request, rescan).then(
      (result) => {
        postStats(); // the server's adapter list is current before the caller hears "done"
        post({ type: 'adminDone', id, result });
      },
      (e) => post({ type: 'adminFailed', id, error: serializeError(e) }),
    );
  };

  port.on('message', (m: ToWorker) => {
    if (m.type === 'add') {
      try {
        const seq = engine.addRequest({ promptIds: m.promptIds, adapter: m.adapter, params: m.params });
        seqs.set(m.id, seq);
        idOf.set(seq, m.id);
      } catch (e) {
        post({ type: 'rejected', id: m.id, error: serializeError(e) });
      }
    } else if (m.type === 'abort') {
      const seq = seqs.get(m.id);
      if (seq) {
        engine.abort(seq);
        seqs.delete(m.id);
        idOf.delete(seq);
      }
    } else if (m.type === 'admin') {
      admin(m.id, m.request);
    } else if (m.type === 'hold') {
      stepsLeft = m.steps;
    } else {
      running = false;
    }
    wake?.();
  });

  post({
    type: 'ready',
    modelName: build.modelDir,
    vocabSize: config.vocabSize,
    adapters: engine.adapters.list(),
    maxModelLen: engine.options.maxModelLen,
    rejected: built.rejected,
    native: (build.backend ?? 'native') === 'native' ? nativeState() : null,
  });

  /** The stats and adapter tiers that changed since last posted (marked as posted). */
  function changedState(): { stats?: EngineStats; adapters?: AdapterInfo[] } {
    const state: { stats?: EngineStats; adapters?: AdapterInfo[] } = {};
    const stats = engine.stats();
    const key = JSON.stringify(stats);
    if (key !== lastStats) state.stats = stats;
    lastStats = key;
    const revision = engine.adapters.revision;
    if (revision !== lastAdapters) state.adapters = engine.adapters.list();
    lastAdapters = revision;
    return state;
  }

  function postStats() {
    const { stats, adapters } = changedState();
    if (stats) post({ type: 'stats', stats });
    if (adapters) post({ type: 'adapters', adapters });
  }

  while (running) {
    if (progressCounter) Atomics.add(progressCounter, 0, 1);
    postStats();
    if (!engine.canStep() || stepsLeft === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
      continue;
    }
    injectThreadFault();
    let outputs: ReturnType<LLMEngine['step']>;
    try {
      outputs = engine.step();
    } catch (e) {
      // Sequences' own faults are contained in step(); what reaches here leaves the engine in no state to go on.
      post({ type: 'fatal', message: `a step failed: ${(e as Error)?.message ?? String(e)}` });
      break;
    }
    if (stepsLeft !== null) stepsLeft--;
    const message = stepMessage(outputs, (seq) => idOf.get(seq));
    // The state after the step travels with its tokens: a client that got its response never reads the
    // stats or adapter tiers of before the step (a second message could arrive after its next request).
    if (message.tokens.length > 0 || message.rejected.length > 0) post({ ...message, ...changedState() });
    else postStats();
    for (const id of endedIds(message)) {
      const seq = seqs.get(id);
      seqs.delete(id);
      if (seq) idOf.delete(seq);
    }
    // Let queued messages (new requests, aborts) in between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (!running) process.exit(0);
}

/** Test plumbing (build.faults): the thread exits, or its step never returns. */
function injectThreadFault() {
  if (build.faults?.exitOnStep) process.exit(3);
  if (build.faults?.hangOnStep) hangForever();
}

async function runAdmin(
  engine: LLMEngine,
  request: AdminOp,
  rescan: () => Promise<{ added: string[]; removed: string[]; changed: string[] }>,
): Promise<AdminResult> {
  if (request.op === 'load') {
    const info = await engine.adapters.register(request.name, request.dir, 'api', {
      replace: request.inplace,
      root: request.root,
    });
    return { op: 'load', info };
  }
  if (request.op === 'unload') {
    if (!engine.adapters.unregister(request.name)) {
      throw createError(
        'ADAPTER_NOT_FOUND',
        { name: request.name, where: 'the served adapters' },
        { param: 'lora_name' },
      );
    }
    return { op: 'unload' };
  }
  if (request.op === 'pin') return { op: 'pin', info: engine.adapters.pin(request.name, request.pinned) };
  return { op: 'rescan', ...(await rescan()) };
}
