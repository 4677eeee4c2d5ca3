/**
 * The plain TypeScript kernels: slow, obvious, and the oracle every native kernel is tested against.
 */
import { referenceAttentionKernels } from './reference/attention.ts';
import { referenceGemmKernels } from './reference/gemm.ts';
import { referenceLoraKernels } from './reference/lora.ts';
import { referenceOpsKernels } from './reference/ops.ts';
import { referenceSamplingKernels } from './reference/sampling.ts';
import type { Kernels } from './types.ts';

export const referenceKernels: Kernels = {
  name: 'reference',
  ...referenceGemmKernels,
  ...referenceLoraKernels,
  ...referenceAttentionKernels,
  ...referenceOpsKernels,
  ...referenceSamplingKernels,
};
