/**
 * The load generator's seeded randomness (mulberry32): the same --seed gives the same prompts, lengths,
 * adapter picks and arrival gaps, so two runs differ only by the server.
 */
export class BenchRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Normal(mean, std) by Box–Muller. */
  normal(mean: number, std: number): number {
    if (std === 0) return mean;
    const u = Math.max(this.next(), Number.MIN_VALUE);
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A rounded normal draw, redrawn until ≥ 1: token counts are positive (as AIPerf samples lengths). */
  positiveInt(mean: number, std: number): number {
    if (std === 0) return Math.max(1, Math.round(mean));
    for (let i = 0; i < 1000; i++) {
      const n = Math.round(this.normal(mean, std));
      if (n >= 1) return n;
    }
    return 1;
  }

  /** Exponential with the given rate (events per unit): the gaps of a Poisson process. */
  exponential(rate: number): number {
    return -Math.log(1 - this.next()) / rate;
  }

  /** A child stream, so adding draws to one part of the workload does not shift the others. */
  fork(salt: number): BenchRandom {
    return new BenchRandom(Math.imul(this.state ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(salt + 1, 0xc2b2ae35));
  }
}
