import { nativeKernels } from './native.ts';
import { referenceKernels } from './reference.ts';
import type { Kernels } from './types.ts';

export type KernelBackend = 'native' | 'reference';

export function getKernels(backend: KernelBackend = 'native'): Kernels {
  return backend === 'reference' ? referenceKernels : nativeKernels;
}

export type * from './types.ts';
