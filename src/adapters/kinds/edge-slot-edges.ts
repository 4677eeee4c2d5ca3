/** One slot's edge modules in the backend's memory: what edge-slots.ts places and edge-step.ts reads. */
import type { EmbeddingTable, Tensor } from '../../backends/types.ts';
import type { PackedWeight } from '../../kernels/types.ts';
import type { LayerNormName } from './edge-modules.ts';

export interface SlotEdges {
  embeddingLora?: { aT: EmbeddingTable; b: PackedWeight; rank: number; scale: number };
  lmHeadLora?: { a: PackedWeight; b: PackedWeight; rank: number; scale: number };
  embedding?: EmbeddingTable;
  lmHead?: PackedWeight;
  finalNorm?: Tensor;
  layerNorms: Map<string, Tensor>; // normKey(layer, norm)
  tokens?: { ids: Int32Array; rows: Tensor; head: PackedWeight | null };
}

export const normKey = (layer: number, norm: LayerNormName) => `${layer}:${norm}`;
