/**
 * A model spec: what one architecture is made of, declared once, so that weight loading, adapter targeting
 * and the forward pass are generic over it. The numbers (sizes, windows, soft-caps) come from config.json
 * (ModelConfig); the spec says which parts exist and what they are called.
 */
import type { ModelFamily } from '../config.ts';

/** Every projection name any family uses, as PEFT and Hugging Face name the nn.Linear. */
export type ModuleKind =
  | 'q_proj'
  | 'k_proj'
  | 'v_proj'
  | 'qkv_proj'
  | 'o_proj'
  | 'gate_proj'
  | 'up_proj'
  | 'gate_up_proj'
  | 'down_proj';

export type ModuleParent = 'self_attn' | 'mlp';

/** What a projection computes, which fixes its shape [out, in] from the config's sizes. */
export type ProjectionRole = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'gate_up' | 'down';

export interface ModuleDecl {
  kind: ModuleKind;
  parent: ModuleParent;
  role: ProjectionRole;
}

export interface ModelSpec {
  family: ModelFamily;
  /** The class config.json's `architectures` names. */
  architecture: string;
  /** config.json's `model_type`. */
  modelType: string;
  /** The LoRA-targetable projections of one layer, in module-index order (module = layer · count + index). */
  modules: readonly ModuleDecl[];
  /** The fused q|k|v GEMM, as the projections whose rows it concatenates (one when the checkpoint fuses them). */
  qkv: readonly ModuleKind[];
  /** The fused gate|up GEMM, likewise. */
  gateUp: readonly ModuleKind[];
  /** Norm tensors of a layer (names under model.layers.{i}.); `attnOut`/`mlpOut` norm the block's output (Gemma). */
  norms: { attnIn: string; attnOut?: string; mlpIn: string; mlpOut?: string };
  /** Per-head RMSNorm of q and k before RoPE (`self_attn.q_norm`, `self_attn.k_norm`). */
  qkNorm: boolean;
  /** RMSNorm multiplies by (offset + weight): 1 for Gemma, whose weights are stored as deltas from one. */
  normWeightOffset: 0 | 1;
  /** Embeddings are multiplied by √hidden_size (Gemma). */
  scaleEmbeddings: boolean;
  /** Which projections carry a bias, given config.json's flags. */
  biases(flags: { attentionBias: boolean; mlpBias: boolean }): readonly ModuleKind[];
  /** PEFT's default target_modules for the family (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
  defaultTargets: readonly ModuleKind[];
  /** Other named modules of a decoder layer (for PEFT's target matching), besides the projections and norms. */
  otherLayerModules: readonly string[];
  /** Attention biases: always there (Qwen2), per config.json's attention_bias, or never. */
  attentionBias: 'always' | 'flag' | 'never';
  /**
   * Which layers slide when config.json has no layer_types: none, all (when sliding_window is set), or all but
   * every n-th (Gemma 2: n = 2; Gemma 3: config.json's sliding_window_pattern, default 6).
   */
  slidingLayers: 'none' | 'all' | { fullEvery: number; patternField?: string };
  /** The attention applies config.json's attn_logit_softcapping (Gemma 2; Gemma 3's attention ignores it). */
  attnSoftcap: boolean;
  /** transformers' default for fields config.json may leave out (soft-caps: null = off). */
  defaults: {
    maxPositionEmbeddings: number;
    tieWordEmbeddings: boolean;
    attnLogitSoftcap: number | null;
    finalLogitSoftcap: number | null;
  };
}
