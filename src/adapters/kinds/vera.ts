/**
 * VeRA (Kopiczko et al. 2023, as PEFT 0.21's tuners/vera computes it): one pair of frozen random matrices per
 * adapter, A [r, maxIn] and B [maxOut, r], shared by every targeted module, and two trained vectors per module,
 * λd [r] and λb [out]. A module with in_features K and out_features N uses the top-left slices A[:, :K], B[:N, :]:
 *
 *   y += λb ⊙ (B[:N, :] · (λd ⊙ (A[:, :K] · x)))
 *
 * which is LoRA with A_l = diag(λd)·A[:, :K], B_l = diag(λb)·B[:N, :] and scale 1 (the same products, up to f32
 * rounding). The loader materializes those per-module factors, so VeRA adapters share the LoRA kernels and mixed
 * batches unchanged. Not done: reading the shared A and B once per step for every layer that uses them (each
 * layer reads its own materialized factors, as large as a LoRA adapter of rank r); that needs a kernel that takes
 * a shared factor plus per-module vectors, and a slot layout that stores A, B once per adapter.
 */
import { kaimingUniformF32, Mt19937 } from './torch-random.ts';

/** The shared matrices of one VeRA adapter, row-major. */
export interface VeraProjection {
  rank: number;
  a: Float32Array; // [rank, maxIn]
  maxIn: number;
  b: Float32Array; // [maxOut, rank]
  maxOut: number;
}

/**
 * The matrices PEFT draws when the adapter was saved without them (save_projection: false): a CPU generator
 * seeded with projection_prng_key, then kaiming_uniform A [r, maxIn], then B [maxOut, r], where maxIn / maxOut
 * are the largest in / out features over the targeted modules (VeraModel._find_dim).
 */
export function regenerateVeraProjection(key: number, rank: number, maxIn: number, maxOut: number): VeraProjection {
  const g = new Mt19937(key);
  const a = kaimingUniformF32(g, rank, maxIn);
  const b = kaimingUniformF32(g, maxOut, rank);
  return { rank, a, maxIn, b, maxOut };
}

/** LoRA factors of one module: a = diag(λd)·A[:, :K] [r, K], b = diag(λb)·B[:N, :] [N, r]. */
export function materializeVeraModule(
  shared: VeraProjection,
  lambdaD: Float32Array,
  lambdaB: Float32Array,
  inFeatures: number,
): { a: Float32Array; b: Float32Array } {
  const { rank: r, maxIn } = shared;
  const n = lambdaB.length;
  if (lambdaD.length !== r || inFeatures > maxIn || n > shared.maxOut) {
    throw new RangeError(
      `VeRA module [${n}, ${inFeatures}] with λd of ${lambdaD.length} does not fit A [${r}, ${maxIn}], B [${shared.maxOut}, ${r}]`,
    );
  }
  const a = new Float32Array(r * inFeatures);
  for (let j = 0; j < r; j++) {
    const d = lambdaD[j];
    for (let c = 0; c < inFeatures; c++) a[j * inFeatures + c] = d * shared.a[j * maxIn + c];
  }
  const b = new Float32Array(n * r);
  for (let i = 0; i < n; i++) {
    const s = lambdaB[i];
    for (let j = 0; j < r; j++) b[i * r + j] = s * shared.b[i * r + j];
  }
  return { a, b };
}
