/**
 * The base model's projection weights as the engine serves them, for adapters whose arithmetic involves W
 * itself (DoRA's per-row norms of W + ΔW), and its embedding and lm_head (saved copies equal to them are dropped). Loads run on their own thread, which does not hold the engine's
 * weights: there the weights are read again from the model directory, in the dtype the engine stores.
 *
 *   const base = projectionsFromModelDir(modelDir, loaded.config);   // loader thread
 *   const base = projectionsInMemory(loaded.weights);                 // tests, merge, inline loads
 *   const w = await base.weight(3, 'q_proj');                         // [N, K] f32
 */
import { weightFormat } from '../kernels/weight-format.ts';
import type { ModelConfig } from '../model/config.ts';
import { openModelTensors } from '../model/model-dir.ts';
import { type ModuleKind, moduleParent } from '../model/modules.ts';
import { convertMatrix, type ModelWeights, type TensorSource } from '../model/weights.ts';

export interface BaseProjections {
  /** W [N, K] of one projection (a module of the family's spec), its served values widened to f32. */
  weight(layer: number, kind: ModuleKind): Promise<Float32Array>;
  /** embed_tokens or lm_head [V, H] (a tied base's lm_head is its embedding), its values widened to f32. */
  table(which: 'embedding' | 'lmHead'): Promise<Float32Array>;
}

export function projectionsInMemory(weights: ModelWeights): BaseProjections {
  return {
    async weight(layer, kind) {
      const w = weights.layers[layer]?.linear[kind];
      if (!w) throw new RangeError(`the base model has no ${kind} in layer ${layer}`);
      return weightFormat(w.dtype).decode(w);
    },
    async table(which) {
      const w = weights[which];
      return weightFormat(w.dtype).decode(w);
    },
  };
}

/** Reads model.layers.{layer}.{parent}.{kind}.weight (and the embedding, lm_head), rounded to config.dtype as the engine's copy is. */
export function projectionsFromModelDir(dir: string, config: ModelConfig): BaseProjections {
  let source: Promise<TensorSource> | null = null;
  return {
    weight(layer, kind) {
      return read(`model.layers.${layer}.${moduleParent(kind)}.${kind}.weight`);
    },
    table(which) {
      return read(which === 'lmHead' && !config.tieWordEmbeddings ? 'lm_head.weight' : 'model.embed_tokens.weight');
    },
  };

  async function read(name: string): Promise<Float32Array> {
    source ??= openModelTensors(dir);
    // GGUF Q8_0 / Q4_K / Q6_K matrices are served as their blocks (loadWeights' keepBlocks default).
    const blocks = await (await source).readBlocks?.(name);
    if (blocks) return weightFormat(blocks.dtype).decode(blocks);
    const raw = await (await source).readRaw(name);
    const w = convertMatrix(raw, config.dtype);
    return weightFormat(w.dtype).decode(w);
  }
}
