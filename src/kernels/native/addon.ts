/**
 * Loads the compiled addon (build/Release/loraplex_native.node, built by `npm install`).
 * Each kernel group's wrapper (gemm.ts, lora.ts, ...) reads its functions from here.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../../..', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: the addon's functions are typed by their wrappers
export type Addon = Record<string, any>;

let addon: Addon | null = null;

export function loadAddon(): Addon {
  if (addon) return addon;
  try {
    addon = require('node-gyp-build')(root) as Addon;
  } catch (e) {
    throw new Error(
      `loraplex: the native addon is not built (${(e as Error).message.split('\n')[0]}). ` +
        'Run `npm install` (or `npm run build:native`) in the project root.',
    );
  }
  return addon;
}

export type Isa = 'scalar' | 'avx2' | 'avx512' | 'avx512bf16';

export interface CpuInfo {
  avx2Fma: boolean;
  avx512: boolean;
  avx512Bf16: boolean;
  /** vpdpbusd: the quantized GEMM's int8 dots on the AVX-512 ISAs */
  avx512Vnni: boolean;
  /** AMX-BF16 in the CPU (whether Linux grants it shows in bf16DotPath once --bf16-dot is on) */
  amxBf16: boolean;
  best: Isa;
  active: Isa;
  threads: number;
}

export function cpuInfo(): CpuInfo {
  return loadAddon().cpuInfo();
}

/** Caps the instruction set the kernels use (tests run every path); returns the one now active. */
export function setIsa(isa: Isa): Isa {
  return loadAddon().setIsa(isa);
}

/** Resizes the native thread pool (the caller counts as one thread). */
export function setThreads(n: number): number {
  return loadAddon().setThreads(n);
}
