/**
 * Where adapters that change more than the layers' projections step into the forward pass (embedding, the
 * layers' input norms, the final norm, lm_head). Each hook runs after the base op over every row and rewrites
 * only the rows of adapters that have such a module (src/adapters/kinds/edge-slots.ts builds them per step);
 * a step whose rows have none gets no hooks at all.
 */
import type { Tensor } from '../backends/types.ts';

export type HookedNorm = 'attnIn' | 'mlpIn';

export interface ForwardHooks {
  /** x [T, H] holds the base embedding of every row (before any embedding scale). */
  embedding(x: Tensor): void;
  /** out [T, H] = rmsNorm(x [T, H]) with the base's weight of that norm of `layer`. */
  layerNorm(layer: number, norm: HookedNorm, x: Tensor, out: Tensor): void;
  /** normed [R, H] = rmsNorm(rows [R, H]) with the base's final norm; rows are the step's logit rows. */
  finalNorm(rows: Tensor, normed: Tensor): void;
  /** logits [R, V] = normed · lm_headᵀ (before any soft-cap). */
  lmHead(normed: Tensor, logits: Tensor): void;
}
