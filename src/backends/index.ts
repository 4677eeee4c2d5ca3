/** The backends: `native` (the C++ CPU kernels) and `reference` (plain TypeScript, the oracle), both on host memory. */
import { nativeKernels } from '../kernels/native.ts';
import { referenceKernels } from '../kernels/reference.ts';
import { HostBackend } from './host-backend.ts';
import type { Backend } from './types.ts';

export type BackendName = 'native' | 'reference';

export function createBackend(name: BackendName = 'native'): Backend {
  return new HostBackend(name === 'reference' ? referenceKernels : nativeKernels);
}

export type * from './types.ts';
