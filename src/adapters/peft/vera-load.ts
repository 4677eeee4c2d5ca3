/**
 * The weights of a PEFT VeRA adapter laid over the base model, as shared factors plus per-module vectors (kinds/vera.ts):
 *
 *   base_model.vera_A                                                 [r, maxIn]   (absent: save_projection false)
 *   base_model.vera_B                                                 [maxOut, r]
 *   base_model.model.model.layers.3.self_attn.q_proj.vera_lambda_d    [r]
 *   base_model.model.model.layers.3.self_attn.q_proj.vera_lambda_b    [out]
 *
 * Names, shapes and the base model are checked before any value is read, as for LoRA (layout.ts). Saved copies
 * of modules_to_save (model.embed_tokens.weight, lm_head.weight, norms) are set aside as LoRA's are
 * (edge-tensors.ts) and served as its edge modules.
 */
import type { ModelConfig } from '../../model/config.ts';
import { type ModuleKind, moduleIndex, moduleKinds, moduleShape } from '../../model/modules.ts';
import type { SafetensorsFile } from '../../model/safetensors.ts';
import { specOf } from '../../model/spec/index.ts';
import { createError } from '../../observability/errors.ts';
import { type EdgeModules, edgeBytes } from '../kinds/edge-modules.ts';
import { regenerateVeraProjection, type VeraProjection, VeraSlices } from '../kinds/vera.ts';
import type { LoraModuleWeights } from '../types.ts';
import { type BaseContext, checkLayerExists, checkRankLimit, type TensorShape } from '../validate.ts';
import { loadVeraSavedModules } from './edge-load.ts';
import { splitEdgeTensors } from './edge-tensors.ts';
import { locateModule } from './layout.ts';
import { baseModules, resolveTargetedModules, SUPPORTED_TARGETS } from './targeting.ts';
import type { PeftVeraConfig } from './vera-config.ts';

const PEFT_PREFIX = 'base_model.model.';
const SHARED = /^base_model\.vera_(A|B)(?:\.[A-Za-z0-9_-]+)?$/;
const LAMBDA = /^(.+)\.vera_lambda_(b|d)(?:\.[A-Za-z0-9_-]+)?$/;

interface VeraModulePlan {
  name: string;
  layer: number;
  kind: ModuleKind;
  lambdaD: TensorShape;
  lambdaB: TensorShape;
}

export interface VeraModules {
  modules: Map<number, LoraModuleWeights>;
  targets: ModuleKind[];
  sizeBytes: number;
  warnings: string[];
  edges?: EdgeModules;
}

type ReadTensor = (tensor: string) => Promise<Float32Array>;

export async function loadVeraModules(
  file: SafetensorsFile,
  config: PeftVeraConfig,
  base: ModelConfig,
  maxLoraRank: number,
  read: ReadTensor,
): Promise<VeraModules> {
  const ctx: BaseContext = { config: base, file: file.path, trainedOn: config.baseModelNameOrPath };
  checkRankLimit(config.file, config.r, "'r'", maxLoraRank);
  const split = splitEdgeTensors(
    [...file.tensors.values()].map((t) => ({ tensor: t.name, shape: t.shape })),
    specOf(base.family),
  );
  const { plans, shared } = planVeraModules(config, split.layerTensors, ctx);
  const maxIn = Math.max(...plans.map((p) => moduleShape(base, p.kind).inFeatures));
  const maxOut = Math.max(...plans.map((p) => moduleShape(base, p.kind).outFeatures));
  const warnings = [...config.warnings];
  let projection: VeraProjection;
  if (config.saveProjection) {
    const a = requireShared(shared.A, 'vera_A', [config.r, maxIn], ctx, config);
    const b = requireShared(shared.B, 'vera_B', [maxOut, config.r], ctx, config);
    projection = {
      rank: config.r,
      a: await read(a.tensor),
      maxIn: a.shape[1],
      b: await read(b.tensor),
      maxOut: b.shape[0],
    };
  } else {
    if (shared.A || shared.B) {
      warnings.push(
        `${config.file}: save_projection is false, so vera_A / vera_B in the weights file are ignored (as PEFT does) and regenerated from projection_prng_key`,
      );
    }
    warnings.push(
      `${config.file}: vera_A / vera_B regenerated from projection_prng_key ${config.projectionPrngKey} as torch's CPU generator draws them (save_projection: false); PEFT warns this may differ across systems`,
    );
    projection = regenerateVeraProjection(config.projectionPrngKey, config.r, maxIn, maxOut);
  }

  const kinds = moduleKinds(base);
  const modules = new Map<number, LoraModuleWeights>();
  const used = new Set<ModuleKind>();
  const slices = new VeraSlices(projection);
  let vectorBytes = 0;
  for (const p of plans) {
    const factors = slices.module(
      await read(p.lambdaD.tensor),
      await read(p.lambdaB.tensor),
      moduleShape(base, p.kind).inFeatures,
    );
    modules.set(moduleIndex(p.layer, p.kind, kinds), {
      kind: p.kind,
      layer: p.layer,
      rank: config.r,
      scale: 1,
      ...factors,
    });
    used.add(p.kind);
    vectorBytes += factors.rankScale.byteLength + factors.columnScale.byteLength;
  }
  const sizeBytes = slices.bytes + vectorBytes;
  const edges = split.hasEdges
    ? await loadVeraSavedModules(
        split.edges,
        { base, file: file.path, config, modulesToSave: config.modulesToSave },
        read,
      )
    : undefined;
  return {
    modules,
    targets: kinds.filter((k) => used.has(k)),
    sizeBytes: sizeBytes + edgeBytes(edges),
    warnings,
    ...(edges ? { edges } : {}),
  };
}

function planVeraModules(
  config: PeftVeraConfig,
  tensors: TensorShape[],
  ctx: BaseContext,
): { plans: VeraModulePlan[]; shared: { A?: TensorShape; B?: TensorShape } } {
  const shared: { A?: TensorShape; B?: TensorShape } = {};
  const lambdas = new Map<string, { layer: number; kind: ModuleKind; b?: TensorShape; d?: TensorShape }>();
  let prefix: string | null = null;
  for (const t of tensors) {
    const s = SHARED.exec(t.tensor);
    if (s) {
      const which = s[1] as 'A' | 'B';
      if (shared[which]) throw secondTensor(t.tensor, `vera_${which}`, shared[which].tensor, ctx);
      shared[which] = t;
      continue;
    }
    const key = t.tensor.startsWith(PEFT_PREFIX) ? t.tensor.slice(PEFT_PREFIX.length) : t.tensor;
    const m = LAMBDA.exec(key);
    if (!m) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: ctx.file,
        field: `tensor '${t.tensor}'`,
        problem: "is not a VeRA tensor (vera_A, vera_B, or a module's vera_lambda_b / vera_lambda_d)",
        hint: "save the adapter with PEFT's save_pretrained, one adapter per directory",
      });
    }
    const where = locateModule(m[1], t.tensor, ctx);
    if (prefix === null) prefix = where.prefix;
    else if (where.prefix !== prefix) {
      throw createError('ADAPTER_BASE_MISMATCH', {
        file: ctx.file,
        problem: `VeRA tensor '${t.tensor}' sits under '${where.prefix}layers', the others under '${prefix}layers'`,
        baseModel: ctx.trainedOn,
      });
    }
    checkLayerExists(ctx, t.tensor, where.layer);
    const entry = lambdas.get(m[1]) ?? { layer: where.layer, kind: where.kind };
    const slot = m[2] as 'b' | 'd';
    const previous = entry[slot];
    if (previous) throw secondTensor(t.tensor, `vera_lambda_${slot}`, previous.tensor, ctx);
    entry[slot] = t;
    lambdas.set(m[1], entry);
  }
  if (lambdas.size === 0) {
    throw createError('ADAPTER_TENSOR_MISSING', {
      file: ctx.file,
      problem: 'holds no vera_lambda_b / vera_lambda_d; a VeRA adapter has them for every targeted module',
    });
  }

  const targeted = resolveTargetedModules(
    config,
    baseModules(ctx.config.numLayers, prefix ?? '', ctx.config.family),
    ctx.config.family,
  );
  for (const t of targeted) {
    if (t.projection === null) {
      throw createError('ADAPTER_UNSUPPORTED_TARGET', {
        file: config.file,
        field: 'target_modules',
        module: t.name,
        supported: SUPPORTED_TARGETS,
      });
    }
  }
  const targetedNames = new Set(targeted.map((t) => t.name));
  for (const [name, entry] of lambdas) {
    if (!targetedNames.has(name)) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: ctx.file,
        field: `tensor '${(entry.d ?? entry.b)!.tensor}'`,
        problem: `adapts module '${name}', which ${config.file} does not target`,
        hint: 'the config and the weights disagree; save both from the same adapter',
      });
    }
  }
  if (targeted.length === 0) {
    throw createError('ADAPTER_BASE_MISMATCH', {
      file: config.file,
      problem: 'target_modules match no projection of the base model',
      baseModel: config.baseModelNameOrPath,
    });
  }

  const plans: VeraModulePlan[] = [];
  for (const t of targeted) {
    const { layer, kind } = t.projection!;
    const entry = lambdas.get(t.name);
    if (!entry?.b || !entry.d) {
      throw createError('ADAPTER_TENSOR_MISSING', {
        file: ctx.file,
        problem: `module '${t.name}', which ${config.file} targets, has no ${entry?.d ? 'vera_lambda_b' : 'vera_lambda_d'}`,
        hint: 'the weights file is incomplete, or the config belongs to another adapter',
      });
    }
    checkVector(entry.d, config.r, `r (${config.r})`, ctx);
    checkVector(entry.b, moduleShape(ctx.config, kind).outFeatures, `the outputs of ${kind} in the base model`, ctx);
    plans.push({ name: t.name, layer, kind, lambdaD: entry.d, lambdaB: entry.b });
  }
  return { plans, shared };
}

function checkVector(t: TensorShape, length: number, what: string, ctx: BaseContext): void {
  if (t.shape.length !== 1 || t.shape[0] !== length) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `tensor '${t.tensor}'`,
      problem: `has shape [${t.shape.join(', ')}]; it must be [${length}], one value per ${what}`,
      hint: 'the adapter was trained on another base model, or the file is damaged',
    });
  }
}

/** vera_A must be [r, ≥ maxIn] and vera_B [≥ maxOut, r]: PEFT slices each module's part from their top-left. */
function requireShared(
  t: TensorShape | undefined,
  name: 'vera_A' | 'vera_B',
  least: [number, number],
  ctx: BaseContext,
  config: PeftVeraConfig,
): TensorShape {
  if (!t) {
    throw createError('ADAPTER_TENSOR_MISSING', {
      file: ctx.file,
      problem: `has no base_model.${name}, which save_projection: true in ${config.file} says it holds`,
      hint: 'the weights file is incomplete, or the config belongs to another adapter',
    });
  }
  const [rows, cols] = t.shape;
  const fits =
    t.shape.length === 2 &&
    (name === 'vera_A' ? rows === least[0] && cols >= least[1] : rows >= least[0] && cols === least[1]);
  if (!fits) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `tensor '${t.tensor}'`,
      problem:
        `has shape [${t.shape.join(', ')}]; ${name} must be ` +
        (name === 'vera_A'
          ? `[${least[0]}, ≥ ${least[1]}] (r, the largest in_features targeted)`
          : `[≥ ${least[0]}, ${least[1]}] (the largest out_features targeted, r)`),
      hint: 'the adapter was trained on another base model, or its r disagrees with the weights',
    });
  }
  return t;
}

function secondTensor(tensor: string, what: string, first: string, ctx: BaseContext) {
  return createError('ADAPTER_TENSOR_UNEXPECTED', {
    file: ctx.file,
    field: `tensor '${tensor}'`,
    problem: `is a second ${what} (the first is '${first}')`,
    hint: 'the file holds more than one adapter; save one adapter per directory',
  });
}
