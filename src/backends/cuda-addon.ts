/**
 * Loads the CUDA backend's addon (build/cuda/loraplex_cuda.node), built when nvcc is found at install.
 * `cudaAvailability()` says whether a CUDA backend can run here (addon built, driver and device present) and
 * why not, so tests and the CLI can skip or refuse cleanly instead of failing late.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: the addon's functions are typed by CudaBackend, their one user
export type CudaAddon = Record<string, any>;

export interface CudaDeviceInfo {
  name: string;
  computeCapability: string;
  multiprocessors: number;
  memoryBytes: number;
  driverVersion: number;
  runtimeVersion: number;
  /** The cuBLAS library loaded, or why none was (the built-in GEMM kernels run then). */
  cublas: string;
  hasCublas: boolean;
}

export type CudaAvailability = { ok: true; addon: CudaAddon; device: CudaDeviceInfo } | { ok: false; reason: string };

let cached: CudaAvailability | null = null;

export function cudaAvailability(): CudaAvailability {
  if (cached) return cached;
  const path = process.env.LORAPLEX_CUDA_ADDON ?? join(root, 'build', 'cuda', 'loraplex_cuda.node');
  if (!existsSync(path)) {
    cached = { ok: false, reason: 'the CUDA addon is not built (no nvcc at install time)' };
    return cached;
  }
  try {
    const addon = require(path) as CudaAddon;
    cached = { ok: true, addon, device: addon.deviceInfo() as CudaDeviceInfo };
  } catch (e) {
    cached = { ok: false, reason: `no usable CUDA device (${(e as Error).message.split('\n')[0]})` };
  }
  return cached;
}

export function loadCudaAddon(): CudaAddon {
  const a = cudaAvailability();
  if (!a.ok) throw new Error(`loraplex: the CUDA backend cannot run here: ${a.reason}`);
  return a.addon;
}
