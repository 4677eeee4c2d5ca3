/**
 * The projections a LoRA adapter can target, and how they are numbered in kernel slot tables.
 * Module index = layer * MODULES_PER_LAYER + kind index.
 */
import type { ModelConfig } from './config.ts';

export const MODULE_KINDS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ModuleKind = (typeof MODULE_KINDS)[number];
export const MODULES_PER_LAYER = MODULE_KINDS.length;

export function isModuleKind(name: string): name is ModuleKind {
  return (MODULE_KINDS as readonly string[]).includes(name);
}

export function moduleIndex(layer: number, kind: ModuleKind): number {
  return layer * MODULES_PER_LAYER + MODULE_KINDS.indexOf(kind);
}

export function numModules(config: ModelConfig): number {
  return config.numLayers * MODULES_PER_LAYER;
}

/** in_features (K) and out_features (N) of a projection, as nn.Linear(K, N) holds weight [N, K]. */
export type ProjectionSizes = Pick<
  ModelConfig,
  'hiddenSize' | 'headDim' | 'numHeads' | 'numKvHeads' | 'intermediateSize'
>;

export function moduleShape(config: ProjectionSizes, kind: ModuleKind): { inFeatures: number; outFeatures: number } {
  const h = config.hiddenSize;
  const d = config.headDim;
  switch (kind) {
    case 'q_proj':
      return { inFeatures: h, outFeatures: config.numHeads * d };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: h, outFeatures: config.numKvHeads * d };
    case 'o_proj':
      return { inFeatures: config.numHeads * d, outFeatures: h };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: h, outFeatures: config.intermediateSize };
    case 'down_proj':
      return { inFeatures: config.intermediateSize, outFeatures: h };
  }
}
