/**
 * llama.cpp's tensor names (llama-arch.cpp: LLM_TENSOR_ATTN_Q → "blk.%d.attn_q", …) for the model spec's
 * projections and norms, and the Hugging Face name of each tensor of a GGUF model file:
 *
 *   token_embd.weight        model.embed_tokens.weight
 *   blk.3.attn_norm.weight   model.layers.3.input_layernorm.weight
 *   blk.3.attn_q.weight      model.layers.3.self_attn.q_proj.weight   (rows permuted for arch "llama")
 *   blk.3.ffn_norm.weight    model.layers.3.post_attention_layernorm.weight
 *   output_norm.weight       model.norm.weight
 *   output.weight            lm_head.weight                           (absent when tied)
 * A fused projection (Phi-3's qkv_proj, gate_up_proj) is one tensor there too (attn_qkv, ffn_up).
 */
import type { ModelFamily } from '../config.ts';
import type { ProjectionRole } from '../spec/index.ts';
import { specOf } from '../spec/index.ts';

export const LLAMA_CPP_TENSOR: Record<ProjectionRole, string> = {
  q: 'attn_q',
  k: 'attn_k',
  v: 'attn_v',
  qkv: 'attn_qkv',
  o: 'attn_output',
  gate: 'ffn_gate',
  up: 'ffn_up',
  gate_up: 'ffn_up',
  down: 'ffn_down',
};

const LLAMA_CPP_NORM: Record<string, string> = { attnIn: 'attn_norm', mlpIn: 'ffn_norm' };

/** GGUF tensor name → Hugging Face name, for a model of `family` with `numLayers` layers. */
export function huggingFaceNames(family: ModelFamily, numLayers: number): Map<string, string> {
  const spec = specOf(family);
  const names = new Map<string, string>([
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', 'lm_head.weight'],
  ]);
  for (let i = 0; i < numLayers; i++) {
    for (const m of spec.modules) {
      for (const suffix of ['weight', 'bias']) {
        names.set(
          `blk.${i}.${LLAMA_CPP_TENSOR[m.role]}.${suffix}`,
          `model.layers.${i}.${m.parent}.${m.kind}.${suffix}`,
        );
      }
    }
    for (const [role, name] of Object.entries(spec.norms)) {
      const ggml = LLAMA_CPP_NORM[role];
      if (ggml !== undefined && name !== undefined)
        names.set(`blk.${i}.${ggml}.weight`, `model.layers.${i}.${name}.weight`);
    }
  }
  return names;
}
