/**
 * PEFT's save_embedding_layers (turned on whenever embed_tokens or lm_head is a LoRA target) writes the base's
 * own embed_tokens / lm_head beside the adapter. A copy equal, value for value, to the base's checkpoint changes
 * nothing the adapter computes, so it is dropped: the adapter then holds no V×H table in the host tier and is not
 * a saved-copy adapter (which cannot be scaled or combined, kinds/edge-compose.ts). A copy that differs in any
 * value (new or retrained rows) is kept and served as before.
 */
import type { BaseProjections } from '../base-projections.ts';
import type { EdgeModules } from './edge-modules.ts';

const TABLES = [
  ['embedding', 'embed_tokens'],
  ['lmHead', 'lm_head'],
] as const;

/** The edge modules without saved embed_tokens / lm_head copies equal to the base's, and what was dropped. */
export async function withoutBaseCopies(
  edges: EdgeModules | undefined,
  base: BaseProjections | undefined,
): Promise<{ edges: EdgeModules | undefined; dropped: string[] }> {
  if (!edges || !base) return { edges, dropped: [] };
  const kept: EdgeModules = { ...edges };
  const dropped: string[] = [];
  for (const [field, module] of TABLES) {
    const copy = edges[field];
    if (copy && sameValues(copy, await base.table(field))) {
      delete kept[field];
      dropped.push(module);
    }
  }
  return { edges: Object.keys(kept).length > 0 ? kept : undefined, dropped };
}

/** Every element equal (NaN never is, so a copy holding one is kept). */
function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
