/**
 * The load generator. Closed loop (--concurrency): keep that many requests in flight, sending the next as
 * one finishes. Open loop (--request-rate): send on a Poisson or constant schedule, optionally capped at
 * --concurrency in flight. It stops issuing at --request-count or after --duration; after a duration,
 * requests still running past the grace period are cancelled (and counted as errors).
 */
import { setMaxListeners } from 'node:events';
import type { RequestSpec } from './endpoint.ts';
import type { RequestRecord } from './record.ts';
import type { GapSampler } from './schedule.ts';

export interface LoadPlan {
  /** Most requests in flight; null only with a request rate (unbounded). */
  concurrency: number | null;
  /** Seconds to the next arrival; null for the closed loop. */
  arrivals: GapSampler | null;
  requestCount: number | null;
  durationSeconds: number | null;
  gracePeriodSeconds: number;
}

export type Send = (spec: RequestSpec, index: number, signal: AbortSignal) => Promise<RequestRecord>;

export interface LoadHooks {
  onIssued?: (index: number) => void;
  onDone?: (record: RequestRecord) => void;
  now?: () => number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

export async function runLoad(
  plan: LoadPlan,
  nextRequest: () => RequestSpec,
  send: Send,
  hooks: LoadHooks = {},
): Promise<RequestRecord[]> {
  if (plan.requestCount === null && plan.durationSeconds === null) throw new Error('a run needs a count or a duration');
  if (plan.arrivals === null && !(plan.concurrency && plan.concurrency > 0)) {
    throw new Error('a closed-loop run needs a concurrency ≥ 1');
  }
  const now = hooks.now ?? (() => performance.now());
  const start = now();
  const deadline = plan.durationSeconds === null ? Number.POSITIVE_INFINITY : start + plan.durationSeconds * 1000;
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per request in flight, by design
  const inFlight = new Set<Promise<void>>();
  const records: RequestRecord[] = [];
  let issued = 0;

  const more = () => (plan.requestCount === null || issued < plan.requestCount) && now() < deadline;
  const launch = () => {
    const index = issued++;
    hooks.onIssued?.(index);
    const done: Promise<void> = send(nextRequest(), index, abort.signal).then((record) => {
      records.push(record);
      inFlight.delete(done);
      hooks.onDone?.(record);
    });
    inFlight.add(done);
  };
  // Waiting for a free slot also ends at the deadline: a slow request must not hold the run open.
  let deadlineTimer: NodeJS.Timeout | undefined;
  const deadlineReached = new Promise<void>((resolve) => {
    if (Number.isFinite(deadline)) deadlineTimer = setTimeout(resolve, deadline - start);
  });
  const waitForSlot = async () => {
    while (plan.concurrency !== null && inFlight.size >= plan.concurrency && now() < deadline) {
      await Promise.race([...inFlight, deadlineReached]);
    }
  };

  if (plan.arrivals === null) {
    while (more()) {
      await waitForSlot();
      if (!more()) break;
      launch();
    }
  } else {
    let due = start;
    while (more()) {
      // Timers may fire a little early (they round to whole milliseconds): sleep until really due.
      while (now() < due) await sleep(due - now());
      if (!more()) break;
      await waitForSlot();
      if (!more()) break;
      launch();
      due += plan.arrivals() * 1000;
      if (due >= deadline) break;
    }
  }

  clearTimeout(deadlineTimer);
  if (plan.durationSeconds !== null && inFlight.size > 0) {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'grace'>((resolve) => {
      timer = setTimeout(() => resolve('grace'), plan.gracePeriodSeconds * 1000);
    });
    const all = Promise.all(inFlight).then(() => 'done' as const);
    if ((await Promise.race([grace, all])) === 'grace') abort.abort();
    clearTimeout(timer);
  }
  await Promise.all(inFlight);
  return records.sort((a, b) => a.index - b.index);
}
