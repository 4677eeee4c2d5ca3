/**
 * The model's architecture, parsed from a Hugging Face config.json (see config-parse.ts).
 * Only what the forward pass needs, in our own names.
 */
import type { WeightDType } from '../kernels/types.ts';

export type ModelFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'phi3';

export interface RopeScalingLlama3 {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * RoPE frequency scaling: llama3's banded scaling, linear (every frequency divided by factor), or one factor per
 * frequency (a GGUF file's rope_freqs, which llama.cpp's converter computes from llama3's parameters).
 */
export type RopeScaling =
  | RopeScalingLlama3
  | { type: 'linear'; factor: number }
  | { type: 'factors'; factors: number[] };

/** The RoPE of a kind of layer: its base and scaling. */
export interface RopeParams {
  theta: number;
  scaling: RopeScaling | null;
}

export type LayerType = 'full' | 'sliding';

export interface ModelConfig {
  family: ModelFamily;
  architecture: string; // e.g. "LlamaForCausalLM", as in config.json
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** The RoPE of sliding-window layers when it differs (Gemma 3's rope_local_base_freq); null: as above. */
  localRope: RopeParams | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean; // q/k/v biases (Qwen2 always; Llama when attention_bias)
  mlpBias: boolean;
  slidingWindow: number | null; // the window of 'sliding' layers; null = full attention everywhere
  /** Per layer: full attention or the sliding window (Gemma alternates; Mistral slides everywhere). */
  layerTypes: LayerType[];
  hiddenActivation: 'silu' | 'gelu_tanh';
  /** Attention scores are multiplied by this (1/√head_dim, or Gemma's query_pre_attn_scalar^-0.5). */
  attentionScale: number;
  /** score = cap · tanh(score / cap) before the mask (Gemma 2); null = off. */
  attnLogitSoftcap: number | null;
  /** logits = cap · tanh(logits / cap) (Gemma 2); null = off. */
  finalLogitSoftcap: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  dtype: WeightDType; // torch_dtype of the checkpoint
}
