/**
 * Lays a PEFT adapter's tensors over the base model before any weight is read: which projection each
 * lora_A / lora_B (and DoRA's lora_magnitude_vector) belongs to, the rank and alpha the config gives it
 * (rank_pattern / alpha_pattern), its scale, and every disagreement between the config, the tensors and the base model as a LoraplexError.
 */
import type { ModelConfig } from '../../model/config.ts';
import { isModuleKind, type ModuleKind, moduleKinds, moduleShape } from '../../model/modules.ts';
import { createError } from '../../observability/errors.ts';
import {
  type BaseContext,
  checkLayerExists,
  checkModuleShapes,
  checkRankLimit,
  type DeclaredModule,
  layerCount,
  type TensorShape,
} from '../validate.ts';
import type { PeftLoraConfig } from './adapter-config.ts';
import {
  baseModules,
  patternValue,
  projectionParent,
  resolveTargetedModules,
  SUPPORTED_TARGETS,
  unusedPatterns,
} from './targeting.ts';
import { parsePeftTensorName } from './tensor-names.ts';
import { MAX_LORA_SCALE } from './weight-values.ts';

export interface PlannedModule extends DeclaredModule {
  moduleName: string; // e.g. model.layers.3.self_attn.q_proj
  alpha: number;
  scale: number;
  magnitude?: TensorShape; // DoRA: lora_magnitude_vector [out_features]
}

export interface PeftLayout {
  modules: PlannedModule[]; // in model order
  warnings: string[];
}

/** Modules our families have that LoRA could name but loraplex does not adapt. */
const KNOWN_OTHER_MODULES = new Set([
  'embed_tokens',
  'lm_head',
  'norm',
  'input_layernorm',
  'post_attention_layernorm',
  'pre_feedforward_layernorm',
  'post_feedforward_layernorm',
  'q_norm',
  'k_norm',
  'act_fn',
  'activation_fn',
  'rotary_emb',
  'self_attn',
  'mlp',
]);

/** LoRA targets outside the layers that edge-load.ts serves. */
const EDGE_TARGET = /^(?:.*\.)?(?:embed_tokens|lm_head)$/;

const DECODER_MODULE = /^(.*?)layers\.(\d+)\.(self_attn|mlp)\.([^.]+)$/;

interface TensorModule {
  key: string;
  layer: number;
  kind: ModuleKind;
  a?: TensorShape;
  b?: TensorShape;
  m?: TensorShape; // DoRA's magnitude
}

export function planPeftModules(
  config: PeftLoraConfig,
  tensors: TensorShape[],
  base: ModelConfig,
  weightsFile: string,
  maxLoraRank: number,
  /** The adapter also changes modules outside the layers (edge-tensors.ts): LoRA on embed_tokens / lm_head is theirs. */
  hasEdges = false,
): PeftLayout {
  const ctx: BaseContext = { config: base, file: weightsFile, trainedOn: config.baseModelNameOrPath };
  if (hasEdges && tensors.length === 0) return { modules: [], warnings: [...config.warnings] };
  const { byKey, prefix } = groupTensors(tensors, ctx);

  const targeted = resolveTargetedModules(config, baseModules(base.numLayers, prefix, base.family), base.family).filter(
    (m) => !(hasEdges && m.projection === null && EDGE_TARGET.test(m.name)),
  );
  for (const m of targeted) {
    if (m.projection === null) {
      throw createError('ADAPTER_UNSUPPORTED_TARGET', {
        file: config.file,
        field: 'target_modules',
        module: m.name,
        supported: SUPPORTED_TARGETS,
      });
    }
  }
  if (targeted.length === 0) {
    throw createError('ADAPTER_BASE_MISMATCH', {
      file: config.file,
      problem: `target_modules ${brief(config.targetModules)} match no projection of the base model`,
      baseModel: config.baseModelNameOrPath,
    });
  }

  const targetedKeys = new Set(targeted.map((m) => m.name));
  for (const t of byKey.values()) {
    if (!targetedKeys.has(t.key)) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsFile,
        field: `tensor '${(t.a ?? t.b ?? t.m)!.tensor}'`,
        problem: `adapts module '${t.key}', which ${config.file} does not target (${describeTargeting(config)})`,
        hint: 'the config and the weights disagree; save both from the same adapter',
      });
    }
  }

  // Ranks come from the config: a too-high rank is reported before any tensor shape is checked.
  const declared = targeted.map((m) => {
    const rankHit = patternValue(config.rankPattern, m.name, config.file, 'rank_pattern');
    const alphaHit = patternValue(config.alphaPattern, m.name, config.file, 'alpha_pattern');
    const rankSource = rankHit ? `rank_pattern[${JSON.stringify(rankHit.pattern)}]` : "'r'";
    const rank = rankHit?.value ?? config.r;
    checkRankLimit(config.file, rank, rankSource, maxLoraRank);
    const alphaSource = alphaHit ? `alpha_pattern[${JSON.stringify(alphaHit.pattern)}]` : 'lora_alpha';
    const alpha = alphaHit?.value ?? config.loraAlpha;
    return { ...m.projection!, name: m.name, rank, rankSource, alpha, alphaSource };
  });

  const maxTensorLayer = Math.max(...[...byKey.values()].map((t) => t.layer));
  const modules: PlannedModule[] = [];
  for (const { layer, kind, name, rank, rankSource, alpha, alphaSource } of declared) {
    const found = byKey.get(name);
    if (!found?.a || !found.b) {
      throw missingFactor(name, layer, found, maxTensorLayer, config, ctx);
    }
    const module: DeclaredModule = { layer, kind, a: found.a, b: found.b, rank, rankSource };
    checkModuleShapes(ctx, module);
    const scale = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    if (!Number.isFinite(scale) || Math.abs(scale) > MAX_LORA_SCALE) {
      throw createError('ADAPTER_INVALID_CONFIG', {
        file: config.file,
        field: alphaSource,
        problem:
          `${alpha} with rank ${rank} (${rankSource}) gives module '${name}' the scale ${scale}` +
          `${config.useRslora ? ' (alpha/√r, use_rslora)' : ' (alpha/r)'}; it must be finite and at most ${MAX_LORA_SCALE} in magnitude`,
        hint: 'lora_alpha is usually r or 2·r; re-save the adapter with its real alpha',
      });
    }
    const magnitude = checkMagnitude(found.m, name, moduleShape(base, kind).outFeatures, config, ctx);
    modules.push({ ...module, moduleName: name, alpha, scale, ...(magnitude ? { magnitude } : {}) });
  }

  const warnings = [...config.warnings];
  const names = targeted.map((m) => m.name);
  for (const [field, patterns] of [
    ['rank_pattern', config.rankPattern],
    ['alpha_pattern', config.alphaPattern],
  ] as const) {
    for (const p of unusedPatterns(patterns, names, config.file, field)) {
      warnings.push(`${config.file}: ${field} key ${JSON.stringify(p)} matches no targeted module`);
    }
  }
  return { modules, warnings };
}

/** Maps each tensor to its projection; all must sit under one decoder-stack prefix ("model." usually). */
function groupTensors(tensors: TensorShape[], ctx: BaseContext): { byKey: Map<string, TensorModule>; prefix: string } {
  if (tensors.length === 0) {
    throw createError('ADAPTER_TENSOR_MISSING', {
      file: ctx.file,
      problem: 'holds no tensors; a LoRA adapter has lora_A and lora_B weights',
    });
  }
  const byKey = new Map<string, TensorModule>();
  let prefix: string | null = null;
  for (const t of tensors) {
    const name = parsePeftTensorName(t.tensor, ctx.file);
    const where = locateModule(name.moduleKey, t.tensor, ctx);
    if (prefix === null) prefix = where.prefix;
    else if (where.prefix !== prefix) {
      throw createError('ADAPTER_BASE_MISMATCH', {
        file: ctx.file,
        problem: `LoRA tensor '${t.tensor}' sits under '${where.prefix}layers', the others under '${prefix}layers'`,
        baseModel: ctx.trainedOn,
      });
    }
    checkLayerExists(ctx, t.tensor, where.layer);
    let entry = byKey.get(name.moduleKey);
    if (!entry) {
      entry = { key: name.moduleKey, layer: where.layer, kind: where.kind };
      byKey.set(name.moduleKey, entry);
    }
    const slot = name.factor === 'lora_A' ? 'a' : name.factor === 'lora_B' ? 'b' : 'm';
    const previous = entry[slot];
    if (previous) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: ctx.file,
        field: `tensor '${t.tensor}'`,
        problem: `is a second ${name.factor} for module '${name.moduleKey}' (the first is '${previous.tensor}')`,
        hint: 'the file holds more than one adapter; save one adapter per directory',
      });
    }
    entry[slot] = t;
  }
  return { byKey, prefix: prefix ?? '' };
}

export function locateModule(
  key: string,
  tensor: string,
  ctx: BaseContext,
): { prefix: string; layer: number; kind: ModuleKind } {
  const m = DECODER_MODULE.exec(key);
  const last = key.slice(key.lastIndexOf('.') + 1);
  const kind = m?.[4] ?? '';
  const ofBase = isModuleKind(kind) && moduleKinds(ctx.config).includes(kind);
  if (m && (m[1] === '' || m[1].endsWith('.')) && ofBase && projectionParent(kind) === m[3]) {
    return { prefix: m[1], layer: Number(m[2]), kind };
  }
  if (KNOWN_OTHER_MODULES.has(last)) {
    throw createError('ADAPTER_UNSUPPORTED_TARGET', {
      file: ctx.file,
      field: `tensor '${tensor}'`,
      module: key,
      supported: SUPPORTED_TARGETS,
    });
  }
  throw createError('ADAPTER_BASE_MISMATCH', {
    file: ctx.file,
    problem:
      `LoRA tensor '${tensor}' adapts module '${key}', which does not exist in the base model ` +
      `(a ${ctx.config.architecture}: model.layers.{i}.self_attn.{q,k,v,o}_proj, model.layers.{i}.mlp.{gate,up,down}_proj)`,
    baseModel: ctx.trainedOn,
  });
}

function missingFactor(
  name: string,
  layer: number,
  found: TensorModule | undefined,
  maxTensorLayer: number,
  config: PeftLoraConfig,
  ctx: BaseContext,
) {
  if (found) {
    const has = found.a ? 'lora_A' : found.b ? 'lora_B' : 'lora_magnitude_vector';
    const lacks = [found.a ? null : 'lora_A', found.b ? null : 'lora_B'].filter((f) => f !== null).join(' / ');
    return createError('ADAPTER_TENSOR_MISSING', {
      file: ctx.file,
      field: `tensor '${(found.a ?? found.b ?? found.m)!.tensor}'`,
      problem: `module '${name}' has its ${has} but no ${lacks}`,
      hint: 'the file is incomplete; re-save the adapter',
    });
  }
  if (layer > maxTensorLayer) {
    return createError('ADAPTER_BASE_MISMATCH', {
      file: ctx.file,
      problem:
        `the adapter has weights for layers up to ${maxTensorLayer} only, but the base model has ` +
        `${layerCount(ctx.config.numLayers)} and ${config.file} targets '${name}'`,
      baseModel: ctx.trainedOn,
    });
  }
  return createError('ADAPTER_TENSOR_MISSING', {
    file: ctx.file,
    problem: `no lora_A / lora_B for module '${name}', which ${config.file} targets (${describeTargeting(config)})`,
    hint: 'the weights file is incomplete, or the config belongs to another adapter',
  });
}

/** DoRA's magnitude: present exactly when use_dora is set, one value per output of the projection. */
function checkMagnitude(
  m: TensorShape | undefined,
  name: string,
  outFeatures: number,
  config: PeftLoraConfig,
  ctx: BaseContext,
): TensorShape | undefined {
  if (!config.useDora) {
    if (!m) return undefined;
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file: ctx.file,
      field: `tensor '${m.tensor}'`,
      problem: `is a DoRA magnitude vector, but ${config.file} does not set use_dora: true`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
  if (!m) {
    throw createError('ADAPTER_TENSOR_MISSING', {
      file: ctx.file,
      problem: `module '${name}' has no lora_magnitude_vector, which DoRA (use_dora: true in ${config.file}) needs`,
      hint: 'the weights file is incomplete, or the config belongs to another adapter',
    });
  }
  if (m.shape.length !== 1 || m.shape[0] !== outFeatures) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `tensor '${m.tensor}'`,
      problem: `has shape [${m.shape.join(', ')}]; DoRA's magnitude of '${name}' has one value per output: [${outFeatures}]`,
      hint: 'the file is inconsistent; re-save the adapter',
    });
  }
  return m;
}

/** JSON of a config value, cut short: target lists can name every module of a large model. */
function brief(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 150)}…` : text;
}

function describeTargeting(config: PeftLoraConfig): string {
  const parts = [`target_modules: ${brief(config.targetModules)}`];
  if (config.layersToTransform !== null) parts.push(`layers_to_transform: ${brief(config.layersToTransform)}`);
  if (config.excludeModules !== null) parts.push(`exclude_modules: ${brief(config.excludeModules)}`);
  return parts.join(', ');
}
