/** The Llama family: Llama, Mistral, Qwen2, Qwen3 (pre-norm, q|k|v and gate|up as separate projections). */
import type { ModelSpec, ModuleDecl } from './types.ts';

export const SEPARATE_PROJECTIONS: readonly ModuleDecl[] = [
  { kind: 'q_proj', parent: 'self_attn', role: 'q' },
  { kind: 'k_proj', parent: 'self_attn', role: 'k' },
  { kind: 'v_proj', parent: 'self_attn', role: 'v' },
  { kind: 'o_proj', parent: 'self_attn', role: 'o' },
  { kind: 'gate_proj', parent: 'mlp', role: 'gate' },
  { kind: 'up_proj', parent: 'mlp', role: 'up' },
  { kind: 'down_proj', parent: 'mlp', role: 'down' },
];

const llamaLike = {
  modules: SEPARATE_PROJECTIONS,
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  gateUp: ['gate_proj', 'up_proj'],
  norms: { attnIn: 'input_layernorm', mlpIn: 'post_attention_layernorm' },
  qkNorm: false,
  normWeightOffset: 0,
  scaleEmbeddings: false,
  defaultTargets: ['q_proj', 'v_proj'],
  otherLayerModules: ['mlp.act_fn'],
  slidingLayers: 'none',
  attnSoftcap: false,
} as const;

const noSoftcaps = { attnLogitSoftcap: null, finalLogitSoftcap: null };

export const LLAMA: ModelSpec = {
  ...llamaLike,
  family: 'llama',
  architecture: 'LlamaForCausalLM',
  modelType: 'llama',
  // Llama's attention_bias adds q/k/v and o biases; mlp_bias the MLP's.
  biases: ({ attentionBias, mlpBias }) => [
    ...(attentionBias ? (['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) : []),
    ...(mlpBias ? (['gate_proj', 'up_proj', 'down_proj'] as const) : []),
  ],
  attentionBias: 'flag',
  defaults: { maxPositionEmbeddings: 2048, tieWordEmbeddings: false, ...noSoftcaps },
};

export const MISTRAL: ModelSpec = {
  ...llamaLike,
  family: 'mistral',
  architecture: 'MistralForCausalLM',
  modelType: 'mistral',
  biases: () => [],
  attentionBias: 'never',
  slidingLayers: 'all',
  defaults: { maxPositionEmbeddings: 131072, tieWordEmbeddings: false, ...noSoftcaps },
};

export const QWEN2: ModelSpec = {
  ...llamaLike,
  family: 'qwen2',
  architecture: 'Qwen2ForCausalLM',
  modelType: 'qwen2',
  biases: () => ['q_proj', 'k_proj', 'v_proj'],
  attentionBias: 'always',
  defaults: { maxPositionEmbeddings: 32768, tieWordEmbeddings: false, ...noSoftcaps },
};

export const QWEN3: ModelSpec = {
  ...llamaLike,
  family: 'qwen3',
  architecture: 'Qwen3ForCausalLM',
  modelType: 'qwen3',
  qkNorm: true,
  biases: ({ attentionBias }) => (attentionBias ? ['q_proj', 'k_proj', 'v_proj', 'o_proj'] : []),
  otherLayerModules: ['mlp.act_fn', 'self_attn.q_norm', 'self_attn.k_norm'],
  attentionBias: 'flag',
  defaults: { maxPositionEmbeddings: 32768, tieWordEmbeddings: false, ...noSoftcaps },
};
