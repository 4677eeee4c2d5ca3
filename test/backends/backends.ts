/**
 * The backends the conformance suite runs against, and the reference backend it compares them with. A new
 * backend joins by adding an entry to `backendsUnderTest` (CUDA has, where a GPU is present); nothing else in
 * test/backends/ names an implementation.
 */
import { createBackend, cudaAvailability } from '../../src/backends/index.ts';
import type { Backend, StepInputs, StepState, Tensor } from '../../src/backends/types.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { bf16DotActive, bf16DotPath, setBf16Dot } from '../../src/kernels/native/gemm.ts';
import type { AttentionBatch, LoraDtype, WeightDType } from '../../src/kernels/types.ts';
import { bf16DotPaths, nativeImplementations, restoreDefaults } from '../kernels/implementations.ts';

export interface BackendUnderTest {
  name: string;
  backend: Backend;
  /** Call before the backend's tests (selects the ISA); `restore` undoes it. */
  activate(): void;
  restore(): void;
  /**
   * 16-bit weights of this dtype go through a product that rounds x to it first (native bf16 with the bf16
   * dot mode on AVX-512 BF16: vdpbf16ps or AMX; CUDA's tensor cores for bf16 and f16).
   */
  roundsActivations(dtype: WeightDType): boolean;
  /** The LoRA shrink of a bank of this dtype rounds x to bf16 first (native bf16 slots with the dot mode on AMX). */
  roundsLoraActivations(dtype: LoraDtype): boolean;
}

/** The oracle: plain TypeScript kernels on host memory. */
export const referenceBackend = createBackend('reference');

/** Whether the CUDA backend can run here (addon built, GPU present), and why not. */
export const cuda = cudaAvailability();

export function backendsUnderTest(): BackendUnderTest[] {
  const none = () => {};
  const native = createBackend('native');
  return [
    {
      name: 'reference',
      backend: createBackend('reference'),
      activate: none,
      restore: none,
      roundsActivations: () => false,
      roundsLoraActivations: () => false,
    },
    ...nativeImplementations().map((impl) => ({
      name: impl.name,
      backend: native,
      activate: impl.activate,
      restore: restoreDefaults,
      roundsActivations: (dtype: WeightDType) => dtype === 'bf16' && bf16DotActive(),
      roundsLoraActivations: (dtype: LoraDtype) => dtype === 'bf16' && bf16DotPath() === 'amx',
    })),
    // bf16 weights through each dot path this CPU has, whatever LORAPLEX_BF16_DOT says.
    ...bf16DotPaths.map((path) => ({
      name: `native-avx512bf16-${path}`,
      backend: native,
      activate: () => {
        setIsa('avx512bf16');
        setBf16Dot(true, { amx: path === 'amx' });
        if (bf16DotPath() !== path) throw new Error(`bf16 dot path ${bf16DotPath()}, wanted ${path}`);
      },
      restore: restoreDefaults,
      roundsActivations: (dtype: WeightDType) => dtype === 'bf16',
      roundsLoraActivations: (dtype: LoraDtype) => dtype === 'bf16' && path === 'amx',
    })),
    ...(cuda.ok
      ? [
          {
            name: 'cuda',
            backend: createBackend('cuda'),
            activate: none,
            restore: none,
            roundsActivations: (dtype: WeightDType) => dtype !== 'f32',
            roundsLoraActivations: () => false,
          },
        ]
      : []),
  ];
}

/** Everything of `t`. */
export function readAll(backend: Backend, t: Tensor): Float32Array {
  return backend.read(t, 0, t.length);
}

/** One sequence per row group; every row's KV goes to its own cache row unless a plan says otherwise. */
export interface PlanOptions {
  tokens: Int32Array;
  positions?: Int32Array;
  slotMapping?: Int32Array;
  attention?: AttentionBatch;
  rowSlot?: Int32Array;
  logitRows?: Int32Array;
}

/** A full StepInputs with defaults (one sequence of every row, positions 0.., no adapters, no logits). */
export function plan(o: PlanOptions): StepInputs {
  const n = o.tokens.length;
  return {
    numTokens: n,
    tokens: o.tokens,
    positions: o.positions ?? Int32Array.from({ length: n }, (_, i) => i),
    slotMapping: o.slotMapping ?? Int32Array.from({ length: n }, (_, i) => i),
    attention: o.attention ?? {
      qStart: Int32Array.of(0, n),
      kvLen: Int32Array.of(n),
      blockTables: new Int32Array(0),
      blockTableStart: Int32Array.of(0),
      numSeqs: 1,
    },
    rowSlot: o.rowSlot ?? new Int32Array(n).fill(-1),
    logitRows: o.logitRows ?? new Int32Array(0),
  };
}

/** A fresh step of `backend` holding `inputs`. */
export function stepOf(backend: Backend, inputs: StepInputs): StepState {
  const step = backend.createStep();
  backend.setStep(step, inputs);
  return step;
}
