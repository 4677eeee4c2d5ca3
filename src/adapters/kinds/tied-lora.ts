/**
 * Tied-LoRA as NeMo implements it (peft.lora_tuning.weight_tying: true; NLPAdapterModelMixin.tie_weights and
 * ParallelLinearAdapterWeightTying in NeMo's parallel_adapters.py): every adapted layer's linear_in (A) and
 * linear_out (B) are tied to layer 0's, so each adapted layer adds
 *
 *   y_l += scale · B · (A · x)      with the same A and B in every layer
 *
 * NeMo's PEFT state dict lists each layer's name (its keys are taken before tying), so the file holds one copy
 * per layer, all equal. The per-layer variation NeMo offers is a position embedding (position_embedding_strategy),
 * a per-layer constant that LoRA factors cannot carry (refused in model-config.ts); NeMo has no per-layer scaling
 * vectors. Here every layer's copy must equal the first layer's; modules of one kind then hold the same A and B
 * arrays (formats/nemo/load.ts), which packing and the slot store once per adapter, so decode reads them once from
 * memory and then from cache, whatever the number of layers.
 */

/** Each tensor → the first layer's tensor of the same name (itself for the first layer). */
export function tiedSources(
  tensors: Iterable<string>,
  layerOf: (tensor: string) => number,
  atLayer: (tensor: string, layer: number) => string,
): Map<string, string> {
  const names = [...tensors];
  const owner = new Map<string, number>(); // the name at layer 0 → the lowest layer holding it
  for (const t of names) {
    const key = atLayer(t, 0);
    const layer = layerOf(t);
    owner.set(key, Math.min(owner.get(key) ?? layer, layer));
  }
  return new Map(names.map((t) => [t, atLayer(t, owner.get(atLayer(t, 0))!)]));
}

/** Whether two copies of a tied factor hold the same values (bit for bit, as NeMo saves one tensor many times). */
export function sameFactor(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
