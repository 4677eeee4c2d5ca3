/**
 * What an adapter changes outside the decoder layers' projections, in f32 host arrays (V = vocab, H = hidden):
 *
 *   embeddingLora   PEFT LoRA on embed_tokens:  x[t] += scale · Aᵀ[token[t], :] · Bᵀ      aT [V, r], b [H, r]
 *   lmHeadLora      PEFT LoRA on lm_head:       logits[i] += scale · (h[i] · Aᵀ) · Bᵀ   a [r, H], b [V, r]
 *   embedding       modules_to_save copy of embed_tokens [V, H]: x[t] = embedding[token[t]]
 *   lmHead          modules_to_save copy of lm_head [V, H]:       logits[i] = h[i] · lmHeadᵀ
 *   finalNorm       modules_to_save copy of model.norm [H]
 *   layerNorms      modules_to_save copies of a layer's input / post-attention RMSNorm weights [H]
 *   tokens          PEFT TrainableTokens: x[t] = rows[j] where token[t] = ids[j]; with a tied head also
 *                   logits[i, ids[j]] = h[i] · rows[j]
 * Norm weights are as the checkpoint stores them (before a family's norm offset). Rows of other adapters and
 * of the base never see any of it (edge-slots.ts serves it per row).
 */
export interface LowRankTable {
  rank: number;
  scale: number;
  a: Float32Array; // embeddingLora: Aᵀ [V, r]; lmHeadLora: A [r, H]
  b: Float32Array; // embeddingLora: B [H, r]; lmHeadLora: B [V, r]
}

export type LayerNormName = 'attnIn' | 'mlpIn';

export interface EdgeModules {
  embeddingLora?: LowRankTable;
  lmHeadLora?: LowRankTable;
  embedding?: Float32Array;
  lmHead?: Float32Array;
  finalNorm?: Float32Array;
  layerNorms?: { layer: number; norm: LayerNormName; weight: Float32Array }[];
  tokens?: { ids: Int32Array; rows: Float32Array; tiedHead: boolean };
}

/** Bytes of the arrays an EdgeModules holds (what the host tier is charged for them). */
export function edgeBytes(e: EdgeModules | undefined): number {
  if (!e) return 0;
  let n = 0;
  for (const t of [e.embeddingLora, e.lmHeadLora]) if (t) n += t.a.byteLength + t.b.byteLength;
  for (const a of [e.embedding, e.lmHead, e.finalNorm]) if (a) n += a.byteLength;
  for (const l of e.layerNorms ?? []) n += l.weight.byteLength;
  if (e.tokens) n += e.tokens.ids.byteLength + e.tokens.rows.byteLength;
  return n;
}

/** The edge modules a packed adapter carries (pack.ts attaches them; loaders and caches pass the object on). */
export function edgesOf(packed: object): EdgeModules | undefined {
  return (packed as { edges?: EdgeModules }).edges;
}
