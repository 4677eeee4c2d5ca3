/**
 * The model's architecture, parsed from a Hugging Face config.json (see config-parse.ts).
 * Only what the forward pass needs, in our own names.
 */
import type { WeightDType } from '../kernels/types.ts';

export type ModelFamily = 'llama' | 'mistral' | 'qwen2';

export interface RopeScalingLlama3 {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

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
  ropeScaling: RopeScalingLlama3 | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean; // q/k/v biases (Qwen2 always; Llama when attention_bias)
  mlpBias: boolean;
  slidingWindow: number | null; // Mistral; null = full attention
  bosTokenId: number | null;
  eosTokenIds: number[];
  dtype: WeightDType; // torch_dtype of the checkpoint
}
