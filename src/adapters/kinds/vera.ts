/**
 * VeRA (Kopiczko et al. 2023, as PEFT 0.21's tuners/vera computes it): one pair of frozen random matrices per
 * adapter, A [r, maxIn] and B [maxOut, r], shared by every targeted module, and two trained vectors per module,
 * λd [r] and λb [out]. A module with in_features K and out_features N uses the top-left slices A[:, :K], B[:N, :]:
 *
 *   y += λb ⊙ (B[:N, :] · (λd ⊙ (A[:, :K] · x)))
 *
 * in that order, as PEFT computes it. Every module of one shape holds the same slices (VeraSlices), so a slot
 * stores A and B once per adapter and each layer adds only its two vectors: decode reads the shared matrices once
 * from memory and then from cache, not a rank-r LoRA's factors per layer. The kernels apply λd after the shrink
 * and λb with the expand (rankScale / columnScale of a packed adapter).
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

/**
 * The slices of the shared matrices that modules of one shape use: A[:, :K] [r, K] and B[:N, :] [N, r], each cut
 * once per K / N, so every module of that shape holds the same arrays (packed and slotted once per adapter).
 */
export class VeraSlices {
  private readonly aByIn = new Map<number, Float32Array>();
  private readonly bByOut = new Map<number, Float32Array>();
  constructor(readonly shared: VeraProjection) {}

  /** A module's factors and vectors: y += λb ⊙ (B[:N, :] · (λd ⊙ (A[:, :K] · x))), scale 1. */
  module(
    lambdaD: Float32Array,
    lambdaB: Float32Array,
    inFeatures: number,
  ): { a: Float32Array; b: Float32Array; rankScale: Float32Array; columnScale: Float32Array } {
    const { rank: r, maxIn, maxOut } = this.shared;
    const n = lambdaB.length;
    if (lambdaD.length !== r || inFeatures > maxIn || n > maxOut) {
      throw new RangeError(
        `VeRA module [${n}, ${inFeatures}] with λd of ${lambdaD.length} does not fit A [${r}, ${maxIn}], B [${maxOut}, ${r}]`,
      );
    }
    return { a: this.sliceA(inFeatures), b: this.sliceB(n), rankScale: lambdaD, columnScale: lambdaB };
  }

  /** Bytes of the distinct slices cut so far (what the adapter holds in f32). */
  get bytes(): number {
    let n = 0;
    for (const t of [...this.aByIn.values(), ...this.bByOut.values()]) n += t.byteLength;
    return n;
  }

  private sliceA(k: number): Float32Array {
    let a = this.aByIn.get(k);
    if (!a) {
      const { rank: r, maxIn } = this.shared;
      a = new Float32Array(r * k);
      for (let j = 0; j < r; j++) a.set(this.shared.a.subarray(j * maxIn, j * maxIn + k), j * k);
      this.aByIn.set(k, a);
    }
    return a;
  }

  private sliceB(n: number): Float32Array {
    let b = this.bByOut.get(n);
    if (!b) {
      b = this.shared.b.slice(0, n * this.shared.rank); // B is [maxOut, r]: its first N rows
      this.bByOut.set(n, b);
    }
    return b;
  }
}
