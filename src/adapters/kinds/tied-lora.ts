/**
 * Tied-LoRA as NeMo implements it (weight_tying: true; ParallelLinearAdapterWeightTying in
 * nemo/collections/nlp/modules/common/megatron/adapters/parallel_adapters.py): the adapters of every layer share
 * one linear_in (A) and one linear_out (B) — tie_weights points them all at the first adapter's parameters — so
 *
 *   y_l += scale · B · (A · x)      for every adapted layer l, with the same A, B
 *
 * NeMo saves a shared parameter once, under the layer that owns it (the first adapted layer). The per-layer
 * variation NeMo offers is a position embedding (position_embedding_strategy), which adds a per-layer constant
 * and is refused (model-config.ts); NeMo has no per-layer scaling vectors. The loader materializes the factors
 * for every adapted layer by pointing each layer's tensor names at the owner's, so the kernels stay unchanged.
 * Not done: reading the shared factors once per step for all layers (each layer reads its own copy).
 */
import { createError } from '../../observability/errors.ts';

export interface TiedTensors {
  /** Every adapted layer's tensor names, as if each layer had saved its own copy. */
  shapes: Map<string, readonly number[]>;
  /** A materialized name → the tensor in the file that holds its values. */
  sourceOf: Map<string, string>;
}

/**
 * Spreads the factors saved under one layer over `layers` (0-based). `layerOf` reads a tensor's layer;
 * `atLayer` renames it to another layer. Factors under more than one layer are refused: that is not a tied file.
 */
export function spreadTiedFactors(
  shapes: ReadonlyMap<string, readonly number[]>,
  layers: readonly number[],
  layerOf: (tensor: string) => number,
  atLayer: (tensor: string, layer: number) => string,
  file: string,
): TiedTensors {
  let owner: number | null = null;
  for (const tensor of shapes.keys()) {
    const layer = layerOf(tensor);
    if (owner === null) owner = layer;
    else if (layer !== owner) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file,
        field: `tensor '${tensor.slice(0, 200)}'`,
        problem: `is saved under layer ${layer}, others under layer ${owner}; a Tied-LoRA checkpoint (weight_tying: true) holds its shared factors once, under the first adapted layer`,
        hint: 'the config says weight_tying: true but the weights are per layer; set weight_tying: false if they are',
      });
    }
  }
  if (owner !== null && !layers.includes(owner)) {
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file,
      problem: `holds the tied factors under layer ${owner}, which the adapter's layer selection does not adapt`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
  const out: TiedTensors = { shapes: new Map(), sourceOf: new Map() };
  for (const [tensor, shape] of shapes) {
    for (const layer of layers) {
      const name = atLayer(tensor, layer);
      out.shapes.set(name, shape);
      out.sourceOf.set(name, tensor);
    }
  }
  return out;
}
