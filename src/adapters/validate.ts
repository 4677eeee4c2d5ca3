/**
 * Checks of an adapter's factors against the base model, for any adapter format: the layer exists, lora_A
 * is [rank, in_features] and lora_B [out_features, rank] of that projection, the rank is the one the
 * config declares and within the server's limit. A wrong in/out size means a different base model, and
 * the message says which dimension (hidden_size, intermediate_size, heads) disagrees.
 */
import type { ModelConfig } from '../model/config.ts';
import { type ModuleKind, moduleShape } from '../model/modules.ts';
import { createError } from '../observability/errors.ts';

export interface TensorShape {
  tensor: string;
  shape: readonly number[];
}

/** One projection's factors as an adapter file declares them, before any data is read. */
export interface DeclaredModule {
  layer: number;
  kind: ModuleKind;
  a: TensorShape; // lora_A
  b: TensorShape; // lora_B
  rank: number; // the rank the config declares for this module
  rankSource: string; // where that rank comes from, e.g. "r" or 'rank_pattern["q_proj"]'
}

export interface BaseContext {
  config: ModelConfig;
  file: string; // the weights file, for messages
  trainedOn: string | null; // the base model the adapter names, if any
}

/** What in_features / out_features of a projection are made of, for messages. */
function dimensionName(kind: ModuleKind, side: 'in' | 'out'): string {
  const heads = 'num_attention_heads × head_dim';
  const kvHeads = 'num_key_value_heads × head_dim';
  const names: Record<ModuleKind, [string, string]> = {
    q_proj: ['hidden_size', heads],
    qkv_proj: ['hidden_size', '(num_attention_heads + 2 × num_key_value_heads) × head_dim'],
    k_proj: ['hidden_size', kvHeads],
    v_proj: ['hidden_size', kvHeads],
    o_proj: [heads, 'hidden_size'],
    gate_proj: ['hidden_size', 'intermediate_size'],
    up_proj: ['hidden_size', 'intermediate_size'],
    gate_up_proj: ['hidden_size', '2 × intermediate_size'],
    down_proj: ['intermediate_size', 'hidden_size'],
  };
  return names[kind][side === 'in' ? 0 : 1];
}

function baseMismatch(ctx: BaseContext, problem: string) {
  return createError('ADAPTER_BASE_MISMATCH', { file: ctx.file, problem, baseModel: ctx.trainedOn });
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function layerCount(n: number): string {
  return n === 1 ? '1 layer (index 0)' : `${n} layers (0..${n - 1})`;
}

export function checkLayerExists(ctx: BaseContext, tensor: string, layer: number): void {
  if (layer >= ctx.config.numLayers) {
    throw baseMismatch(
      ctx,
      `LoRA tensor '${tensor}' is for layer ${layer}, but the base model has ${layerCount(ctx.config.numLayers)}`,
    );
  }
}

export function checkModuleShapes(ctx: BaseContext, m: DeclaredModule): void {
  const { inFeatures, outFeatures } = moduleShape(ctx.config, m.kind);
  for (const t of [m.a, m.b]) {
    if (t.shape.length !== 2) {
      throw createError('ADAPTER_TENSOR_SHAPE', {
        file: ctx.file,
        field: `tensor '${t.tensor}'`,
        problem: `has shape ${shapeText(t.shape)}; a LoRA factor is a matrix`,
      });
    }
  }
  const [aRank, aIn] = m.a.shape;
  const [bOut, bRank] = m.b.shape;
  if (aIn !== inFeatures) {
    throw baseMismatch(
      ctx,
      `LoRA tensor '${m.a.tensor}' has shape ${shapeText(m.a.shape)}, but ${m.kind} of the base model takes ` +
        `${inFeatures} inputs (${dimensionName(m.kind, 'in')}), not ${aIn}`,
    );
  }
  if (bOut !== outFeatures) {
    throw baseMismatch(
      ctx,
      `LoRA tensor '${m.b.tensor}' has shape ${shapeText(m.b.shape)}, but ${m.kind} of the base model has ` +
        `${outFeatures} outputs (${dimensionName(m.kind, 'out')}), not ${bOut}`,
    );
  }
  if (aRank !== bRank) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `tensor '${m.b.tensor}'`,
      problem: `has rank ${bRank} (shape ${shapeText(m.b.shape)}), but its lora_A '${m.a.tensor}' has rank ${aRank} (shape ${shapeText(m.a.shape)})`,
      hint: 'the file is inconsistent; re-save the adapter',
    });
  }
  if (aRank !== m.rank) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `tensor '${m.a.tensor}'`,
      problem: `has rank ${aRank} (shape ${shapeText(m.a.shape)}), but the adapter config declares rank ${m.rank} (${m.rankSource}) for this module`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
}

export function checkRankLimit(file: string, rank: number, where: string, maxLoraRank: number): void {
  if (rank > maxLoraRank) throw createError('ADAPTER_RANK_TOO_HIGH', { file, where, rank, maxRank: maxLoraRank });
}
