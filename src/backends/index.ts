/**
 * The backends: `native` (the C++ CPU kernels) and `reference` (plain TypeScript, the oracle), both on host
 * memory, and `cuda` (device memory and CUDA kernels; only where the addon was built and a GPU is present).
 */
import { nativeKernels } from '../kernels/native.ts';
import { referenceKernels } from '../kernels/reference.ts';
import { CudaBackend } from './cuda-backend.ts';
import { HostBackend } from './host-backend.ts';
import type { Backend } from './types.ts';

export type BackendName = 'native' | 'reference' | 'cuda';

export function createBackend(name: BackendName = 'native'): Backend {
  if (name === 'cuda') return new CudaBackend();
  return new HostBackend(name === 'reference' ? referenceKernels : nativeKernels);
}

export { cudaAvailability } from './cuda-addon.ts';
export type * from './types.ts';
