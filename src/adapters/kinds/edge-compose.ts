/**
 * The edge modules (edge-modules.ts) of a request's combination (compose.ts). LoRA on embed_tokens and lm_head is
 * linear in its factors, so it composes as the layers' LoRA does, by concatenation (ranks add, scale 1):
 *
 *   embeddingLora:  Aᵀ = [Aᵀ_1 | Aᵀ_2 | …]  [V, Σ r_i]     B = [w_1·s_1·B_1 | w_2·s_2·B_2 | …]  [H, Σ r_i]
 *   lmHeadLora:     A  = [A_1; A_2; …]       [Σ r_i, H]     B = [w_1·s_1·B_1 | w_2·s_2·B_2 | …]  [V, Σ r_i]
 *   so x[t] += Σ_i w_i·s_i·Aᵀ_i[tok[t]]·Bᵀ_i and logits[i] += Σ_i w_i·s_i·(h[i]·Aᵀ_i)·Bᵀ_i exactly.
 *
 * Whole saved copies (modules_to_save, or save_embedding_layers' copies of embed_tokens / lm_head) and trainable
 * token rows replace values instead of adding to them: a weight cannot scale them and two adapters' copies
 * cannot be mixed. They are served only when the combination is that one adapter at weight 1 (nothing scaled,
 * nothing mixed); otherwise the request is refused naming the adapter and its config field. Nothing is dropped.
 */
import { createError } from '../../observability/errors.ts';
import type { EdgeModules, LowRankTable } from './edge-modules.ts';

export interface EdgePart {
  edges: EdgeModules | undefined;
  weight: number;
  name: string;
}

/** The combination's edge modules (undefined: none of the parts has any); throws a 400 naming `field`. */
export function composeEdges(parts: readonly EdgePart[], maxRank: number, field = 'lora'): EdgeModules | undefined {
  if (!parts.some((p) => p.edges)) return undefined;
  if (parts.length === 1 && parts[0].weight === 1) return parts[0].edges;
  for (const { edges: e, name } of parts) {
    const refused = e && savedField(e);
    if (refused) {
      const message =
        `adapter '${name}' has ${refused}, which cannot be scaled or combined: it replaces the base's values ` +
        'instead of adding a delta; request it alone by model (or in lora alone at scale 1)';
      throw createError('REQUEST_INVALID', { message }, { param: field });
    }
  }
  const out: EdgeModules = {};
  const embedding = parts.filter((p) => p.edges?.embeddingLora);
  if (embedding.length > 0) out.embeddingLora = concat(embedding, 'embeddingLora', maxRank, field);
  const head = parts.filter((p) => p.edges?.lmHeadLora);
  if (head.length > 0) out.lmHeadLora = concat(head, 'lmHeadLora', maxRank, field);
  return out;
}

/** The config field behind a saved copy or token rows, as the adapter's author knows it; null when none. */
function savedField(e: EdgeModules): string | null {
  if (e.tokens) return 'trainable_token_indices (its own rows of embed_tokens)';
  if (e.embedding) return 'a saved copy of embed_tokens (modules_to_save, or save_embedding_layers)';
  if (e.lmHead) return 'a saved copy of lm_head (modules_to_save, or save_embedding_layers)';
  if (e.finalNorm || (e.layerNorms?.length ?? 0) > 0) return 'saved copies of norms (modules_to_save)';
  return null;
}

function concat(
  parts: readonly EdgePart[],
  which: 'embeddingLora' | 'lmHeadLora',
  maxRank: number,
  field: string,
): LowRankTable {
  const tables = parts.map((p) => ({ t: p.edges![which]!, w: p.weight }));
  const rank = tables.reduce((n, { t }) => n + t.rank, 0);
  if (rank > maxRank) {
    const module = which === 'embeddingLora' ? 'embed_tokens' : 'lm_head';
    const message =
      `the combination has rank ${rank} on ${module} (ranks add), above --max-lora-rank ${maxRank}; ` +
      'combine fewer adapters or raise --max-lora-rank';
    throw createError('REQUEST_INVALID', { message }, { param: field });
  }
  // Both layouts keep the rank innermost in b ([rows, r]); a is [V, r] (embedding) or [r, H] (head).
  const bRows = tables[0].t.b.length / tables[0].t.rank;
  const b = new Float32Array(bRows * rank);
  let at = 0;
  for (const { t, w } of tables) {
    const f = Math.fround(w * t.scale);
    for (let row = 0; row < bRows; row++) {
      for (let j = 0; j < t.rank; j++) b[row * rank + at + j] = t.b[row * t.rank + j] * f;
    }
    at += t.rank;
  }
  let a: Float32Array;
  if (which === 'lmHeadLora') {
    a = new Float32Array(tables.reduce((n, { t }) => n + t.a.length, 0));
    let pos = 0;
    for (const { t } of tables) {
      a.set(t.a, pos);
      pos += t.a.length;
    }
  } else {
    const vRows = tables[0].t.a.length / tables[0].t.rank;
    a = new Float32Array(vRows * rank);
    at = 0;
    for (const { t } of tables) {
      for (let v = 0; v < vRows; v++) a.set(t.a.subarray(v * t.rank, (v + 1) * t.rank), v * rank + at);
      at += t.rank;
    }
  }
  return { rank, scale: 1, a, b };
}
