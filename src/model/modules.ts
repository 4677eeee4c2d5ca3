/**
 * The projections an adapter can target, and how they are numbered in kernel slot tables: each family's
 * spec lists its projections (src/model/spec/); module index = layer · (projections per layer) + position.
 */
import type { ModelConfig, ModelFamily } from './config.ts';
import { specOf } from './spec/index.ts';
import { SEPARATE_PROJECTIONS } from './spec/llama.ts';
import type { ModuleKind, ModuleParent, ProjectionRole } from './spec/types.ts';

export type { ModuleKind } from './spec/types.ts';

/** The seven projections of the Llama-like families (Llama, Mistral, Qwen2/3, Gemma 2/3), in module order. */
export const MODULE_KINDS: readonly ModuleKind[] = SEPARATE_PROJECTIONS.map((m) => m.kind);

const ALL_KINDS = new Set<string>([
  'q_proj',
  'k_proj',
  'v_proj',
  'qkv_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'gate_up_proj',
  'down_proj',
]);
const ROLES: Record<ModuleKind, ProjectionRole> = {
  q_proj: 'q',
  k_proj: 'k',
  v_proj: 'v',
  qkv_proj: 'qkv',
  o_proj: 'o',
  gate_proj: 'gate',
  up_proj: 'up',
  gate_up_proj: 'gate_up',
  down_proj: 'down',
};

/** Any family's projection name. */
export function isModuleKind(name: string): name is ModuleKind {
  return ALL_KINDS.has(name);
}

/** The family's projections of one layer, in module-index order. */
export function moduleKinds(config: { family: ModelFamily }): readonly ModuleKind[] {
  return specOf(config.family).modules.map((m) => m.kind);
}

export function moduleParent(kind: ModuleKind): ModuleParent {
  const role = ROLES[kind];
  return role === 'gate' || role === 'up' || role === 'gate_up' || role === 'down' ? 'mlp' : 'self_attn';
}

/** Module index of a projection; `kinds` is the family's list (moduleKinds), the Llama-like seven by default. */
export function moduleIndex(layer: number, kind: ModuleKind, kinds: readonly ModuleKind[] = MODULE_KINDS): number {
  const position = kinds.indexOf(kind);
  if (position < 0) throw new RangeError(`'${kind}' is not a projection of this model (${kinds.join(', ')})`);
  return layer * kinds.length + position;
}

export function numModules(config: Pick<ModelConfig, 'family' | 'numLayers'>): number {
  return config.numLayers * moduleKinds(config).length;
}

/** in_features (K) and out_features (N) of a projection, as nn.Linear(K, N) holds weight [N, K]. */
export type ProjectionSizes = Pick<
  ModelConfig,
  'hiddenSize' | 'headDim' | 'numHeads' | 'numKvHeads' | 'intermediateSize'
>;

export function moduleShape(config: ProjectionSizes, kind: ModuleKind): { inFeatures: number; outFeatures: number } {
  const h = config.hiddenSize;
  const q = config.numHeads * config.headDim;
  const kv = config.numKvHeads * config.headDim;
  const i = config.intermediateSize;
  switch (ROLES[kind]) {
    case 'q':
      return { inFeatures: h, outFeatures: q };
    case 'k':
    case 'v':
      return { inFeatures: h, outFeatures: kv };
    case 'qkv':
      return { inFeatures: h, outFeatures: q + 2 * kv };
    case 'o':
      return { inFeatures: q, outFeatures: h };
    case 'gate':
    case 'up':
      return { inFeatures: h, outFeatures: i };
    case 'gate_up':
      return { inFeatures: h, outFeatures: 2 * i };
    case 'down':
      return { inFeatures: i, outFeatures: h };
  }
}
