/** The engine's load over time for the dashboard's charts: one sample a second, the last five minutes. */
import type { ServingStats } from '../../observability/serving-stats.ts';

export interface LoadSample {
  /** Milliseconds since the epoch. */
  t: number;
  /** KV-cache blocks in use, 0..1. */
  kvUse: number;
  running: number;
  waiting: number;
}

export const SAMPLE_INTERVAL_MS = 1000;
const CAPACITY = 300;

export class LoadHistory {
  private readonly samples: LoadSample[] = [];

  record(stats: ServingStats, t: number) {
    const kvUse = stats.kvBlocksTotal ? stats.kvBlocksUsed / stats.kvBlocksTotal : 0;
    this.samples.push({ t, kvUse, running: stats.running, waiting: stats.waiting });
    if (this.samples.length > CAPACITY) this.samples.shift();
  }

  get all(): readonly LoadSample[] {
    return this.samples;
  }

  /**
   * Samples `read()` every interval until the returned stop is called; the timer never keeps the process alive.
   * `read` returns null while there is nothing to sample (the engine is still loading).
   */
  sample(read: () => ServingStats | null): () => void {
    const timer = setInterval(() => {
      const stats = read();
      if (stats) this.record(stats, Date.now());
    }, SAMPLE_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }
}
