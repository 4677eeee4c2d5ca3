/**
 * What the dashboard shows per model (the base and each adapter): requests in flight, tokens per second and
 * time to first token, counted where the API routes hand requests to the engine. A request counts as waiting
 * until its first token arrives (queued or in prefill), then as running until its stream ends.
 */
import type { AsyncEngine } from '../../engine/async-engine.ts';

/** Tokens per second are averaged over this window. */
export const RATE_WINDOW_MS = 10_000;
/** TTFT shown is the median of this many latest requests. */
const TTFT_SAMPLES = 16;

export interface ModelTraffic {
  running: number;
  waiting: number;
  /** Finished requests (completed, stopped, aborted or failed). */
  requests: number;
  /** Tokens generated since the server started. */
  tokens: number;
  tokensPerSecond: number;
  /** Median TTFT of the latest requests; null before the first token. */
  ttftMs: number | null;
}

interface Flight {
  startedAt: number;
  firstTokenAt: number | null;
}

class Tally {
  readonly flights = new Set<Flight>();
  requests = 0;
  tokens = 0;
  /** [bucket start, tokens] of recent token events, oldest first, pruned to the rate window. */
  readonly recent: [number, number][] = [];
  readonly ttfts: number[] = [];
}

/** The key of the base model in `snapshot()`. */
export const BASE = null;

export class TrafficLedger {
  private readonly tallies = new Map<string | null, Tally>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Counts every request `engine.generate` serves until the returned function is called. The API routes call
   * `generate` and know nothing of the dashboard, so the ledger wraps that one method instead of adding hooks
   * to each route.
   */
  watch(engine: AsyncEngine): () => void {
    const own = Object.hasOwn(engine, 'generate') ? engine.generate : null;
    const generate = engine.generate.bind(engine);
    const counted: AsyncEngine['generate'] = (promptIds, adapter, params, signal) =>
      // A combination counts under its first adapter (a bounded set of rows).
      this.counted(
        adapter === null || typeof adapter === 'string' ? adapter : adapter[0].name,
        generate(promptIds, adapter, params, signal),
      );
    engine.generate = counted;
    return () => {
      if (engine.generate !== counted) return; // wrapped again since: leave the chain alone
      if (own) engine.generate = own;
      else Reflect.deleteProperty(engine, 'generate');
    };
  }

  /** Passes `events` through, counting them for `adapter` (null: the base). */
  async *counted<E extends { tokens: number[] }>(adapter: string | null, events: AsyncIterable<E>): AsyncGenerator<E> {
    const tally = this.tally(adapter);
    const flight: Flight = { startedAt: this.now(), firstTokenAt: null };
    tally.flights.add(flight);
    try {
      for await (const e of events) {
        this.record(tally, flight, e.tokens.length);
        yield e;
      }
    } finally {
      tally.flights.delete(flight);
      tally.requests++;
    }
  }

  /** Every model seen so far, by adapter name (null: the base). */
  snapshot(): Map<string | null, ModelTraffic> {
    const now = this.now();
    const out = new Map<string | null, ModelTraffic>();
    for (const [name, t] of this.tallies) {
      this.prune(t, now);
      let running = 0;
      for (const f of t.flights) if (f.firstTokenAt !== null) running++;
      const windowTokens = t.recent.reduce((sum, [, n]) => sum + n, 0);
      out.set(name, {
        running,
        waiting: t.flights.size - running,
        requests: t.requests,
        tokens: t.tokens,
        tokensPerSecond: (windowTokens * 1000) / RATE_WINDOW_MS,
        ttftMs: median(t.ttfts),
      });
    }
    return out;
  }

  private tally(adapter: string | null): Tally {
    let t = this.tallies.get(adapter);
    if (!t) {
      t = new Tally();
      this.tallies.set(adapter, t);
    }
    return t;
  }

  private record(tally: Tally, flight: Flight, tokens: number) {
    const now = this.now();
    if (flight.firstTokenAt === null) {
      flight.firstTokenAt = now;
      tally.ttfts.push(now - flight.startedAt);
      if (tally.ttfts.length > TTFT_SAMPLES) tally.ttfts.shift();
    }
    tally.tokens += tokens;
    // 100 ms buckets: the window holds at most 100 entries whatever the token rate.
    const bucket = Math.floor(now / 100) * 100;
    const last = tally.recent.at(-1);
    if (last && last[0] === bucket) last[1] += tokens;
    else tally.recent.push([bucket, tokens]);
    this.prune(tally, now);
  }

  private prune(tally: Tally, now: number) {
    let drop = 0;
    while (drop < tally.recent.length && tally.recent[drop][0] <= now - RATE_WINDOW_MS) drop++;
    if (drop > 0) tally.recent.splice(0, drop);
  }
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
