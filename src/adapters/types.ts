/**
 * A LoRA (or DoRA, VeRA, Tied-LoRA) adapter in memory, whatever format it came from: validated against one base model, every factor
 * in f32, ready to pack into a kernel slot (pack.ts).
 */
import type { ModuleKind } from '../model/modules.ts';
import type { GgufLoraConfig } from './formats/gguf-lora/gguf-config.ts';
import type { NemoLoraConfig } from './formats/nemo/model-config.ts';
import type { EdgeModules } from './kinds/edge-modules.ts';
import type { PeftLoraConfig } from './peft/adapter-config.ts';
import type { PeftVeraConfig } from './peft/vera-config.ts';

/** The LoRA factors of one targeted projection: y += scale · (x · Aᵀ) · Bᵀ */
export interface LoraModuleWeights {
  kind: ModuleKind;
  layer: number;
  rank: number;
  scale: number; // alpha / rank, or alpha / √rank for rsLoRA
  a: Float32Array; // [rank, K]  (lora_A.weight); K = moduleShape(base, kind).inFeatures
  b: Float32Array; // [N, rank]  (lora_B.weight); N = moduleShape(base, kind).outFeatures
  /** DoRA: y = outScale ⊙ (x·Wᵀ + scale · (x · Aᵀ) · Bᵀ) + bias instead (see dora.ts). */
  dora?: DoraVectors;
  /**
   * VeRA's trained vectors: y += scale · columnScale ⊙ (B · (rankScale ⊙ (A · x))), rankScale [rank] (λd),
   * columnScale [N] (λb). With them (and for Tied-LoRA) `a` and `b` are shared: modules with the same shape hold
   * the same arrays, which packing stores once per adapter (pack.ts) and the slot once per slot.
   */
  rankScale?: Float32Array;
  columnScale?: Float32Array;
}

/** A DoRA module's vectors, both [N]: its magnitude, and magnitude / ‖W + scale·B·A‖ per output row. */
export interface DoraVectors {
  magnitude: Float32Array; // lora_magnitude_vector
  outScale: Float32Array; // from the base weight W the adapter was loaded against
}

/** The source format's parsed config, kept for introspection (admin API, logs). */
export type AdapterSourceConfig = PeftLoraConfig | PeftVeraConfig | GgufLoraConfig | NemoLoraConfig;

/** `Config` names the source format where the loader is known (loadPeftAdapter gives a PEFT config). */
export interface LoraAdapter<Config extends AdapterSourceConfig = AdapterSourceConfig> {
  name: string;
  rankMax: number;
  targets: ModuleKind[]; // the projection kinds adapted in at least one layer, in MODULE_KINDS order
  modules: Map<number, LoraModuleWeights>; // key: moduleIndex(layer, kind)
  config: Config;
  sizeBytes: number; // bytes of the f32 factors (and DoRA vectors) held in memory
  source?: string; // where it was loaded from (a directory), for messages
  warnings?: string[]; // worth logging; did not stop the load
  /** What it changes outside the layers' projections: embed_tokens, lm_head, norms, token rows. */
  edges?: EdgeModules;
}
