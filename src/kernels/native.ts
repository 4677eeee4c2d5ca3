/**
 * The native CPU kernels (C++ addon with runtime ISA dispatch), behind the same interface as the reference.
 */
import { nativeAttentionKernels } from './native/attention.ts';
import { nativeGemmKernels } from './native/gemm.ts';
import { nativeLoraKernels } from './native/lora.ts';
import { nativeOpsKernels } from './native/ops.ts';
import { nativeSamplingKernels } from './native/sampling.ts';
import type { Kernels } from './types.ts';

export const nativeKernels: Kernels = {
  name: 'native-cpu',
  ...nativeGemmKernels,
  ...nativeLoraKernels,
  ...nativeAttentionKernels,
  ...nativeOpsKernels,
  ...nativeSamplingKernels,
};
