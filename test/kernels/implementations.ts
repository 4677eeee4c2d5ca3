/**
 * What every kernel test shares: the implementations to run (the reference, and the native addon under each
 * instruction set this CPU has), restoring the addon's defaults afterwards, seeded random data, and the
 * comparisons (max |diff|, bitwise equality).
 */
import assert from 'node:assert/strict';
import { cpuInfo, type Isa, setIsa, setThreads } from '../../src/kernels/native/addon.ts';
import { configureNative } from '../../src/kernels/native/config.ts';
import { bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';
import { nativeKernels } from '../../src/kernels/native.ts';
import { referenceKernels } from '../../src/kernels/reference.ts';
import type { Kernels } from '../../src/kernels/types.ts';

export { referenceKernels };

/**
 * The kernel suites run under the configuration `serve` would build from LORAPLEX_ISA / LORAPLEX_THREADS /
 * LORAPLEX_BF16_DOT (the addon reads no environment, so the tests hand it over as the CLI does).
 */
export const envNativeConfig = {
  isa: process.env.LORAPLEX_ISA as Isa | undefined,
  threads: process.env.LORAPLEX_THREADS ? Number(process.env.LORAPLEX_THREADS) : undefined,
  bf16Dot: process.env.LORAPLEX_BF16_DOT === '1',
};
configureNative(envNativeConfig);

/** The ISA and pool size as configured, before any test changes them. */
const defaults = cpuInfo();

/** Every instruction set the native kernels can run here, slowest first (scalar always). */
export function availableIsas(): Isa[] {
  const isas: Isa[] = ['scalar'];
  if (defaults.avx2Fma) isas.push('avx2');
  if (defaults.avx512) isas.push('avx512');
  if (defaults.avx512Bf16) isas.push('avx512bf16');
  return isas;
}

export interface Implementation {
  name: string;
  kernels: Kernels;
  /** Call before using `kernels` (selects the ISA); undo with `restoreDefaults`. */
  activate(): void;
}

export function nativeImplementations(): Implementation[] {
  return availableIsas().map((isa) => ({
    name: `native-${isa}`,
    kernels: nativeKernels,
    activate: () => setIsa(isa),
  }));
}

/** Puts back the ISA, thread count and bf16 dot mode the addon had at load; use in `after` of tests that change them. */
export function restoreDefaults() {
  setIsa(defaults.active);
  setThreads(defaults.threads);
  setBf16Dot(envNativeConfig.bf16Dot);
}

/**
 * The bf16 dot paths this machine can run under avx512bf16: vdpbf16ps, and amx where the CPU has AMX-BF16 and
 * Linux grants the tile state (probed once). Empty without AVX-512 BF16.
 */
export const bf16DotPaths: ('vdpbf16ps' | 'amx')[] = (() => {
  if (!defaults.avx512Bf16) return [];
  setIsa('avx512bf16');
  setBf16Dot(true);
  const amx = bf16DotPath() === 'amx';
  restoreDefaults();
  return amx ? ['vdpbf16ps', 'amx'] : ['vdpbf16ps'];
})();

/** Runs `run` with the native pool at `n` threads, then puts back the count it had. */
export function withThreads<T>(n: number, run: () => T): T {
  const before = cpuInfo().threads;
  setThreads(n);
  try {
    return run();
  } finally {
    setThreads(before);
  }
}

/** Deterministic pseudo-random numbers (mulberry32) so failures reproduce. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    /** uniform in [0, 1) */
    next,
    /** uniform integer in [lo, hi], both included */
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    /** standard normal (Box-Muller) */
    normal: () => {
      const u = Math.max(next(), 1e-12);
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    /** n values uniform in [-scale, scale) */
    f32: (n: number, scale = 1) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = (next() * 2 - 1) * scale;
      return out;
    },
  };
}
export type Rng = ReturnType<typeof rng>;

/** max |a[i] - b[i]|; a NaN on either side counts as infinity. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'maxAbsDiff: lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/** Fails unless a and b hold the same bits (so -0 ≠ +0 and NaN payloads count), naming the first difference. */
export function assertBitwise(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs bitwise (${a[i]} vs ${b[i]})`);
  }
}
