/**
 * The native kernels' one configuration: thread-pool size, instruction-set cap and the bf16 dot path. Built
 * from flags and environment in src/cli/ and handed over once, at backend load, in the engine's thread; the
 * addon reads no environment of its own.
 *
 *   configureNative({ threads: 4, isa: 'avx2' });
 *   // → { threads: 4, isa: 'avx2', bf16Dot: false, bf16DotPath: 'off', q4kAmx: false }
 */
import { cpuInfo, type Isa, setIsa, setThreads } from './addon.ts';
import { type Bf16DotPath, bf16DotActive, bf16DotPath, setBf16Dot } from './gemm.ts';
import { qgemmAmxActive } from './qgemm.ts';

export interface NativeConfig {
  /** Kernel threads, the caller included (default: every core). */
  threads?: number;
  /** The widest instruction set the kernels may use (default: the best this CPU has). */
  isa?: Isa;
  /** bf16 weights through bf16 dot products on AVX-512 BF16, AMX where present (default: off; see setBf16Dot). */
  bf16Dot?: boolean;
}

/** What the addon runs with after configuring. */
export interface NativeState {
  threads: number;
  isa: Isa;
  bf16Dot: boolean;
  /** Which dot path bf16 weights take: 'amx', 'vdpbf16ps' or 'off'. */
  bf16DotPath: Bf16DotPath;
  /** Whether Q4_K batches of 24 or more rows run on AMX-INT8 tiles (the same results as VNNI; see setQgemmAmx). */
  q4kAmx: boolean;
}

/** Applies the fields given (the others keep their current values) and returns the resulting state. */
export function configureNative(config: NativeConfig): NativeState {
  if (config.isa !== undefined) setIsa(config.isa);
  if (config.threads !== undefined) setThreads(config.threads);
  if (config.bf16Dot !== undefined) setBf16Dot(config.bf16Dot);
  return nativeState();
}

export function nativeState(): NativeState {
  const info = cpuInfo();
  return {
    threads: info.threads,
    isa: info.active,
    bf16Dot: bf16DotActive(),
    bf16DotPath: bf16DotPath(),
    q4kAmx: qgemmAmxActive(),
  };
}
