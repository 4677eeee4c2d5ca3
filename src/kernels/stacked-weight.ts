/**
 * A matrix stacked from row blocks in different ggml block formats (a Q4_K_M file's fused q|k|v: q and k in
 * Q4_K, v in Q6_K), each part kept in its own blocks and run as its own GEMM into its columns of y:
 *
 *   W [Σ n_i, K] = [W_0; W_1; …] (part i's rows at o_i = Σ_{j<i} n_j)
 *   Semantics: y[:, o_i : o_i + n_i] (+)= x · W_iᵀ (+ bias[o_i : o_i + n_i]), part by part
 *
 * so every output equals the one of running its part alone, bit for bit (a kernel's output n depends only on
 * x and W's row n). Backends without a quantized GEMM decode the parts (weight-format.ts's decode reads them).
 */
import type { Kernels, PackedWeight, WeightMatrix } from './types.ts';
import { isBlockDType } from './weight-format.ts';

/** The parts' rows stacked without decoding them: a WeightMatrix whose `parts` hold the blocks (data empty). */
export function stackBlockRows(parts: WeightMatrix[]): WeightMatrix {
  const { cols } = parts[0];
  if (parts.some((p) => p.cols !== cols)) throw new Error('stackBlockRows: parts differ in columns');
  if (!parts.every((p) => isBlockDType(p.dtype) && p.parts === undefined))
    throw new Error('stackBlockRows: every part must be a plain block matrix');
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  return { dtype: parts[0].dtype, rows, cols, data: new Uint8Array(0), parts };
}

/**
 * Part outputs before they go to their columns of y: one buffer for every stacked weight (the GEMMs run one at
 * a time on the calling thread), grown as needed and kept, so a long prefill does not leave one per layer.
 */
let scratch = new Float32Array(0);

/** The parts packed by one backend's kernels; `offsets[i]` is part i's first row (its first column of y). */
export class StackedWeight implements PackedWeight {
  readonly rows: number;
  readonly offsets: number[];

  constructor(
    readonly dtype: WeightMatrix['dtype'],
    readonly cols: number,
    readonly parts: PackedWeight[],
  ) {
    this.offsets = [];
    let rows = 0;
    for (const p of parts) {
      this.offsets.push(rows);
      rows += p.rows;
    }
    this.rows = rows;
  }

  static pack(w: WeightMatrix, pack: (part: WeightMatrix) => PackedWeight): StackedWeight {
    if (!w.parts) throw new TypeError('StackedWeight.pack: the matrix has no parts');
    return new StackedWeight(w.dtype, w.cols, w.parts.map(pack));
  }

  /** The Semantics above: one `gemm` per part into a [m, n_i] buffer, then into y's columns (m = 1: in place). */
  gemm(
    gemm: Kernels['gemm'],
    x: Float32Array,
    y: Float32Array,
    m: number,
    bias: Float32Array | null | undefined,
    accumulate: boolean,
  ): void {
    const n = this.rows;
    if (!(y instanceof Float32Array) || y.length < m * n)
      throw new TypeError(`gemm: y must be a Float32Array of m · N = ${m * n} elements`);
    if (bias && bias.length < n) throw new TypeError(`gemm: bias has ${bias.length} elements, needs N = ${n}`);
    for (const [i, part] of this.parts.entries()) {
      const o = this.offsets[i];
      const ni = part.rows;
      const partBias = bias ? bias.subarray(o, o + ni) : undefined;
      // One row (decode): the part's columns are contiguous in y, so it writes them in place.
      if (m === 1) {
        gemm(x, part, y.subarray(o, o + ni), 1, partBias, accumulate);
        continue;
      }
      if (scratch.length < m * ni) scratch = new Float32Array(m * ni);
      const out = scratch.subarray(0, m * ni);
      if (accumulate) for (let r = 0; r < m; r++) out.set(y.subarray(r * n + o, r * n + o + ni), r * ni);
      gemm(x, part, out, m, partBias, accumulate);
      for (let r = 0; r < m; r++) y.set(out.subarray(r * ni, (r + 1) * ni), r * n + o);
    }
  }
}
