/**
 * Sorts a PEFT adapter's tensors into the decoder layers' LoRA factors (layout.ts) and the tensors of the
 * modules outside them (names after the `base_model.model.` prefix; "model." is the decoder stack's prefix):
 *
 *   model.embed_tokens.lora_embedding_A  [r, V]   model.embed_tokens.lora_embedding_B  [H, r]   LoRA on embed_tokens
 *   lm_head.lora_A.weight [r, H]                   lm_head.lora_B.weight [V, r]                  LoRA on lm_head
 *   model.embed_tokens(.base_layer).weight [V, H]  lm_head(.base_layer).weight [V, H]            saved copies
 *   model.norm.weight [H]                          model.layers.{i}.{input,post_attention}_layernorm.weight [H]
 *   model.embed_tokens.token_adapter.trainable_tokens_delta [n, H]                             trainable tokens
 *
 * (`.base_layer.weight` is what save_embedding_layers writes beside LoRA on embed_tokens / lm_head; PEFT loads it
 * into the model, so it is served as the adapter's copy.)
 */
import type { ModelSpec } from '../../model/spec/types.ts';
import type { LayerNormName } from '../kinds/edge-modules.ts';
import type { TensorShape } from '../validate.ts';

export interface EdgeTensors {
  embeddingLora: { a?: TensorShape; b?: TensorShape };
  lmHeadLora: { a?: TensorShape; b?: TensorShape };
  embedding?: TensorShape;
  lmHead?: TensorShape;
  finalNorm?: TensorShape;
  layerNorms: { layer: number; norm: LayerNormName; tensor: TensorShape }[];
  tokenRows?: TensorShape;
}

const PREFIX = /^(?:base_model\.model\.)?(?:_orig_mod\.)?/;
const NAME = '(?:\\.[A-Za-z0-9_-]+)?'; // PEFT's adapter-name infix, when saved in memory spelling
const EMBEDDING_LORA = new RegExp(`^(?:model\\.)?embed_tokens\\.lora_embedding_([AB])${NAME}(?:\\.weight)?$`);
const HEAD_LORA = new RegExp(`^lm_head\\.lora_([AB])${NAME}\\.weight$`);
const EMBEDDING = /^(?:model\.)?embed_tokens(?:\.base_layer)?\.weight$/;
const HEAD = /^lm_head(?:\.base_layer)?\.weight$/;
const FINAL_NORM = /^(?:model\.)?norm\.weight$/;
const TOKEN_ROWS = new RegExp(`^(?:model\\.)?embed_tokens\\.token_adapter\\.trainable_tokens_delta${NAME}$`);

export function splitEdgeTensors(
  shapes: TensorShape[],
  spec: ModelSpec,
): { layerTensors: TensorShape[]; edges: EdgeTensors; hasEdges: boolean } {
  const edges: EdgeTensors = { embeddingLora: {}, lmHeadLora: {}, layerNorms: [] };
  const layerTensors: TensorShape[] = [];
  const layerNorm = new RegExp(`^(?:model\\.)?layers\\.(\\d+)\\.(${spec.norms.attnIn}|${spec.norms.mlpIn})\\.weight$`);
  for (const t of shapes) {
    const key = t.tensor.replace(PREFIX, '');
    const embeddingLora = EMBEDDING_LORA.exec(key);
    const headLora = HEAD_LORA.exec(key);
    const norm = layerNorm.exec(key);
    if (embeddingLora) edges.embeddingLora[embeddingLora[1] === 'A' ? 'a' : 'b'] = t;
    else if (headLora) edges.lmHeadLora[headLora[1] === 'A' ? 'a' : 'b'] = t;
    else if (EMBEDDING.test(key)) edges.embedding = t;
    else if (HEAD.test(key)) edges.lmHead = t;
    else if (FINAL_NORM.test(key)) edges.finalNorm = t;
    else if (TOKEN_ROWS.test(key)) edges.tokenRows = t;
    else if (norm) {
      edges.layerNorms.push({
        layer: Number(norm[1]),
        norm: norm[2] === spec.norms.attnIn ? 'attnIn' : 'mlpIn',
        tensor: t,
      });
    } else layerTensors.push(t);
  }
  return { layerTensors, edges, hasEdges: layerTensors.length < shapes.length };
}
