/**
 * The base weights as the forward pass uses them: q|k|v and gate|up fused into one matrix each, so each
 * layer runs three GEMMs fewer (the LoRA deltas still target each projection through column offsets).
 */
import type { Kernels, PackedWeight, WeightMatrix } from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import type { ModelWeights } from './weights.ts';

export interface FusedLayer {
  inputNorm: Float32Array;
  postAttentionNorm: Float32Array;
  qkv: PackedWeight; // [(Hq + 2·Hkv)·D, H]
  qkvBias: Float32Array | undefined;
  o: PackedWeight; // [H, Hq·D]
  oBias: Float32Array | undefined;
  gateUp: PackedWeight; // [2·I, H]
  down: PackedWeight; // [H, I]
}

export interface FusedWeights {
  embedding: WeightMatrix; // [V, H]
  layers: FusedLayer[];
  finalNorm: Float32Array;
  lmHead: PackedWeight; // [V, H]
}

export function concatRows(parts: WeightMatrix[]): WeightMatrix {
  const { dtype, cols } = parts[0];
  for (const p of parts) {
    if (p.dtype !== dtype || p.cols !== cols) throw new Error('concatRows: parts differ in dtype or columns');
  }
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const data = dtype === 'f32' ? new Float32Array(rows * cols) : new Uint16Array(rows * cols);
  let offset = 0;
  for (const p of parts) {
    data.set(p.data as never, offset);
    offset += p.rows * cols;
  }
  return { dtype, rows, cols, data };
}

function concatBias(parts: (Float32Array | null)[], sizes: number[]): Float32Array | undefined {
  if (parts.every((p) => p === null)) return undefined;
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  parts.forEach((p, i) => {
    if (p) out.set(p, offset);
    offset += sizes[i];
  });
  return out;
}

/** Packs every matrix for the kernels. The unfused originals can be dropped afterwards. */
export function fuseWeights(config: ModelConfig, weights: ModelWeights, kernels: Kernels): FusedWeights {
  const qSize = config.numHeads * config.headDim;
  const kvSize = config.numKvHeads * config.headDim;
  const layers = weights.layers.map((l) => ({
    inputNorm: l.inputNorm,
    postAttentionNorm: l.postAttentionNorm,
    qkv: kernels.packWeight(concatRows([l.q, l.k, l.v])),
    qkvBias: concatBias([l.qBias, l.kBias, l.vBias], [qSize, kvSize, kvSize]),
    o: kernels.packWeight(l.o),
    oBias: l.oBias ?? undefined,
    gateUp: kernels.packWeight(concatRows([l.gate, l.up])),
    down: kernels.packWeight(l.down),
  }));
  return {
    embedding: weights.embedding,
    layers,
    finalNorm: weights.finalNorm,
    lmHead: kernels.packWeight(weights.lmHead),
  };
}
