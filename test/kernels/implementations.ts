/**
 * The implementations every kernel conformance test runs against: the reference itself (sanity), and the
 * native addon under each instruction set this CPU has (scalar, AVX2, AVX-512, AVX-512 BF16).
 */
import { cpuInfo, type Isa, setIsa } from '../../src/kernels/native/addon.ts';
import { nativeKernels } from '../../src/kernels/native.ts';
import { referenceKernels } from '../../src/kernels/reference.ts';
import type { Kernels } from '../../src/kernels/types.ts';

export { referenceKernels };

export interface Implementation {
  name: string;
  kernels: Kernels;
  /** Call before using `kernels` (selects the ISA); restore with `resetIsa`. */
  activate(): void;
}

export function nativeImplementations(): Implementation[] {
  const info = cpuInfo();
  const isas: Isa[] = ['scalar'];
  if (info.avx2Fma) isas.push('avx2');
  if (info.avx512) isas.push('avx512');
  if (info.avx512Bf16) isas.push('avx512bf16');
  return isas.map((isa) => ({ name: `native-${isa}`, kernels: nativeKernels, activate: () => setIsa(isa) }));
}

export function resetIsa() {
  setIsa(cpuInfo().best);
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
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    normal: () => {
      const u = Math.max(next(), 1e-12);
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    f32: (n: number, scale = 1) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = (next() * 2 - 1) * scale;
      return out;
    },
  };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}
