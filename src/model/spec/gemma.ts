/**
 * Gemma 2 and Gemma 3 (text): GeGLU MLP, a norm before and after each block, RMSNorm weights stored as
 * deltas from one, embeddings scaled by √hidden_size, tied embeddings; Gemma 3 adds q/k norms.
 */
import { SEPARATE_PROJECTIONS } from './llama.ts';
import type { ModelSpec } from './types.ts';

const gemma = {
  modules: SEPARATE_PROJECTIONS,
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  gateUp: ['gate_proj', 'up_proj'],
  norms: {
    attnIn: 'input_layernorm',
    attnOut: 'post_attention_layernorm',
    mlpIn: 'pre_feedforward_layernorm',
    mlpOut: 'post_feedforward_layernorm',
  },
  normWeightOffset: 1,
  scaleEmbeddings: true,
  biases: ({ attentionBias }: { attentionBias: boolean }) =>
    attentionBias ? (['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) : [],
  defaultTargets: ['q_proj', 'v_proj'],
  attentionBias: 'flag',
} as const;

export const GEMMA2: ModelSpec = {
  ...gemma,
  family: 'gemma2',
  architecture: 'Gemma2ForCausalLM',
  modelType: 'gemma2',
  qkNorm: false,
  otherLayerModules: ['mlp.act_fn'],
  slidingLayers: { fullEvery: 2 },
  attnSoftcap: true,
  defaults: { maxPositionEmbeddings: 8192, tieWordEmbeddings: true, attnLogitSoftcap: 50, finalLogitSoftcap: 30 },
};

export const GEMMA3: ModelSpec = {
  ...gemma,
  family: 'gemma3',
  architecture: 'Gemma3ForCausalLM',
  modelType: 'gemma3_text',
  qkNorm: true,
  otherLayerModules: ['mlp.act_fn', 'self_attn.q_norm', 'self_attn.k_norm'],
  slidingLayers: { fullEvery: 6, patternField: 'sliding_window_pattern' },
  // transformers 5.24's Gemma 3 attention never applies attn_logit_softcapping, whatever config.json says.
  attnSoftcap: false,
  defaults: { maxPositionEmbeddings: 131072, tieWordEmbeddings: true, attnLogitSoftcap: null, finalLogitSoftcap: null },
};
