/**
 * Reporting helpers shared by the kernel benchmarks: a median timer and a plain-text table.
 *
 *   const s = medianSeconds(() => kernels.gemm(x, w, y, m), { repeats: 7 });
 *   printTable(['shape', 'GFLOP/s'], [['576×576', '412']]);
 */

export interface TimingOptions {
  /** Timed samples; the median is returned. */
  repeats?: number;
  /** Untimed calls first (page faults, caches, the thread pool waking up). */
  warmup?: number;
  /** A sample loops the call until this much time has passed, then divides (short kernels). */
  minSampleMs?: number;
  /** Run before each call, untimed (e.g. evicting caches); forces one call per sample. */
  before?: () => void;
}

/** Median seconds per call of `fn`. */
export function medianSeconds(fn: () => void, options: TimingOptions = {}): number {
  const { repeats = 7, warmup = 1, minSampleMs = 20, before } = options;
  for (let i = 0; i < warmup; i++) {
    before?.();
    fn();
  }
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    if (before) {
      before();
      const t0 = process.hrtime.bigint();
      fn();
      samples.push(Number(process.hrtime.bigint() - t0) / 1e9);
      continue;
    }
    let calls = 0;
    const t0 = process.hrtime.bigint();
    let elapsed = 0;
    do {
      fn();
      calls++;
      elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (elapsed * 1e3 < minSampleMs);
    samples.push(elapsed / calls);
  }
  return median(samples);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Prints rows under a header, columns right-aligned except the first. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

export function printSection(title: string): void {
  console.log(`\n== ${title} ==`);
}

/** `value` as a percentage of `of`, e.g. "83%"; "-" when `of` is not positive. */
export function percent(value: number, of: number): string {
  return of > 0 ? `${((100 * value) / of).toFixed(0)}%` : '-';
}

/** Deterministic uniform values in [-scale, scale) (mulberry32), for benchmark inputs. */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
