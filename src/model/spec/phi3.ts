/** Phi-3: the checkpoint fuses q|k|v into `qkv_proj` and gate|up into `gate_up_proj`; PEFT targets them as such. */
import type { ModelSpec } from './types.ts';

export const PHI3: ModelSpec = {
  family: 'phi3',
  architecture: 'Phi3ForCausalLM',
  modelType: 'phi3',
  modules: [
    { kind: 'qkv_proj', parent: 'self_attn', role: 'qkv' },
    { kind: 'o_proj', parent: 'self_attn', role: 'o' },
    { kind: 'gate_up_proj', parent: 'mlp', role: 'gate_up' },
    { kind: 'down_proj', parent: 'mlp', role: 'down' },
  ],
  qkv: ['qkv_proj'],
  gateUp: ['gate_up_proj'],
  norms: { attnIn: 'input_layernorm', mlpIn: 'post_attention_layernorm' },
  qkNorm: false,
  normWeightOffset: 0,
  scaleEmbeddings: false,
  biases: () => [],
  defaultTargets: ['qkv_proj'],
  otherLayerModules: ['mlp.activation_fn', 'resid_attn_dropout', 'resid_mlp_dropout'],
  attentionBias: 'never',
  slidingLayers: 'all',
  attnSoftcap: false,
  defaults: { maxPositionEmbeddings: 4096, tieWordEmbeddings: false, attnLogitSoftcap: null, finalLogitSoftcap: null },
};
