/**
 * The base weights as the forward pass uses them, on the backend: q|k|v and gate|up fused into one matrix
 * each (the spec's groups; Phi-3's checkpoint is fused already), so each layer runs three GEMMs fewer (the
 * adapter deltas still target each projection through column offsets); norms and biases uploaded once.
 */
import type { Backend, EmbeddingTable, Tensor } from '../backends/types.ts';
import { stackBlockRows } from '../kernels/stacked-weight.ts';
import type { PackedWeight, WeightMatrix } from '../kernels/types.ts';
import { convertWeight, isBlockDType, weightFormat } from '../kernels/weight-format.ts';
import type { ModelConfig } from './config.ts';
import { type ModuleKind, moduleShape } from './modules.ts';
import { specOf } from './spec/index.ts';
import type { LayerWeights, ModelWeights } from './weights.ts';

export interface FusedLayer {
  /** Norm weights [H] (q/k: [D]), with the family's offset already added (Gemma's 1 + w). */
  norms: { attnIn: Tensor; attnOut?: Tensor; mlpIn: Tensor; mlpOut?: Tensor; q?: Tensor; k?: Tensor };
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

/**
 * Stacks the parts' rows. Parts all in blocks of different formats (a Q4_K_M file's q and k in Q4_K, v in
 * Q6_K) stay in their blocks, stacked (stacked-weight.ts: one GEMM per part, outputs bit for bit the same);
 * parts mixing blocks and floats all go to the first float format among them, block rows decoded, never
 * re-quantized.
 */
export function concatRows(parts: WeightMatrix[]): WeightMatrix {
  const { cols } = parts[0];
  if (parts.some((p) => p.cols !== cols)) throw new Error('concatRows: parts differ in columns');
  const mixed = parts.some((p) => p.dtype !== parts[0].dtype);
  if (mixed && parts.every((p) => isBlockDType(p.dtype))) return stackBlockRows(parts);
  const common = mixed ? (parts.find((p) => !isBlockDType(p.dtype))?.dtype ?? 'f32') : parts[0].dtype;
  const same = parts.map((p) => convertWeight(p, common));
  const rows = same.reduce((n, p) => n + p.rows, 0);
  const format = weightFormat(common);
  const length = isBlockDType(common) ? format.bytes(rows, cols) : rows * cols;
  const data =
    common === 'f32'
      ? new Float32Array(length)
      : isBlockDType(common)
        ? new Uint8Array(length)
        : new Uint16Array(length);
  let offset = 0;
  for (const p of same) {
    data.set(p.data as never, offset);
    offset += isBlockDType(common) ? format.bytes(p.rows, cols) : p.rows * cols;
  }
  return { dtype: common, rows, cols, data };
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
  const spec = specOf(config.family);
  const norm = (v: Float32Array) =>
    backend.upload(spec.normWeightOffset === 0 ? v : v.map((w) => Math.fround(spec.normWeightOffset + w)));
  const vector = (v: Float32Array | undefined) => (v ? backend.upload(v) : undefined);
  const matrix = (l: LayerWeights, kind: ModuleKind): WeightMatrix => {
    const w = l.linear[kind];
    if (!w) throw new Error(`the weights have no ${kind}`);
    return w;
  };
  const fused = (l: LayerWeights, kinds: readonly ModuleKind[]) =>
    backend.packWeight(concatRows(kinds.map((k) => matrix(l, k))));
  const layers = weights.layers.map((l): FusedLayer => {
    const named = (name: string | undefined) => (name === undefined ? undefined : norm(l.norms[name]));
    return {
      norms: {
        attnIn: norm(l.norms[spec.norms.attnIn]),
        attnOut: named(spec.norms.attnOut),
        mlpIn: norm(l.norms[spec.norms.mlpIn]),
        mlpOut: named(spec.norms.mlpOut),
        q: spec.qkNorm ? norm(l.norms['self_attn.q_norm']) : undefined,
        k: spec.qkNorm ? norm(l.norms['self_attn.k_norm']) : undefined,
      },
      qkv: fused(l, spec.qkv),
      qkvBias: vector(
        concatBias(
          spec.qkv.map((k) => l.bias[k] ?? null),
          spec.qkv.map((k) => moduleShape(config, k).outFeatures),
        ),
      ),
      o: backend.packWeight(matrix(l, 'o_proj')),
      oBias: vector(l.bias.o_proj),
      gateUp: fused(l, spec.gateUp),
      down: backend.packWeight(matrix(l, 'down_proj')),
    };
  });
  return {
    embedding: backend.embeddingTable(weights.embedding),
    layers,
    finalNorm: norm(weights.finalNorm),
    lmHead: backend.packWeight(weights.lmHead),
  };
}
