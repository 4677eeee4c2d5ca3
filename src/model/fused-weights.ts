/**
 * The base weights as the forward pass uses them, on the backend: q|k|v and gate|up fused into one matrix
 * each, so each layer runs three GEMMs fewer (the adapter deltas still target each projection through column
 * offsets); norms and biases uploaded once.
 */
import type { Backend, EmbeddingTable, Tensor } from '../backends/types.ts';
import type { PackedWeight, WeightMatrix } from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import type { ModelWeights } from './weights.ts';

export interface FusedLayer {
  inputNorm: Tensor; // [H]
  postAttentionNorm: Tensor; // [H]
  qkv: PackedWeight; // [(Hq + 2·Hkv)·D, H]
  qkvBias: Tensor | undefined;
  o: PackedWeight; // [H, Hq·D]
  oBias: Tensor | undefined;
  gateUp: PackedWeight; // [2·I, H]
  down: PackedWeight; // [H, I]
}

export interface FusedWeights {
  embedding: EmbeddingTable; // [V, H]
  layers: FusedLayer[];
  finalNorm: Tensor; // [H]
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

/** Packs every matrix and uploads every vector. The host originals can be dropped afterwards. */
export function fuseWeights(config: ModelConfig, weights: ModelWeights, backend: Backend): FusedWeights {
  const qSize = config.numHeads * config.headDim;
  const kvSize = config.numKvHeads * config.headDim;
  const vector = (v: Float32Array | null | undefined) => (v ? backend.upload(v) : undefined);
  const layers = weights.layers.map((l) => ({
    inputNorm: backend.upload(l.inputNorm),
    postAttentionNorm: backend.upload(l.postAttentionNorm),
    qkv: backend.packWeight(concatRows([l.q, l.k, l.v])),
    qkvBias: vector(concatBias([l.qBias, l.kBias, l.vBias], [qSize, kvSize, kvSize])),
    o: backend.packWeight(l.o),
    oBias: vector(l.oBias),
    gateUp: backend.packWeight(concatRows([l.gate, l.up])),
    down: backend.packWeight(l.down),
  }));
  return {
    embedding: backend.embeddingTable(weights.embedding),
    layers,
    finalNorm: backend.upload(weights.finalNorm),
    lmHead: backend.packWeight(weights.lmHead),
  };
}
