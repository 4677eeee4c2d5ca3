/**
 * Reads and checks the tensors edge-tensors.ts set aside into an EdgeModules (kinds/edge-modules.ts): shapes
 * against the base model, ranks against --max-lora-rank and the config, token ids against the vocabulary.
 * A saved embedding or lm_head with more rows than the base's vocabulary (an adapter trained after
 * resize_token_embeddings) is refused naming the tensor: serving it needs the adapter's own vocabulary.
 */
import type { ModelConfig } from '../../model/config.ts';
import { createError } from '../../observability/errors.ts';
import type { EdgeModules, LowRankTable } from '../kinds/edge-modules.ts';
import { checkRankLimit, type TensorShape } from '../validate.ts';
import type { PeftLoraConfig } from './adapter-config.ts';
import type { EdgeTensors } from './edge-tensors.ts';
import { baseModules, patternValue, resolveTargetedModules } from './targeting.ts';
import { MAX_LORA_SCALE } from './weight-values.ts';

type Read = (tensor: string) => Promise<Float32Array>;

interface Ctx {
  config: PeftLoraConfig;
  base: ModelConfig;
  file: string; // the weights file, for messages
  maxLoraRank: number;
}

export async function loadEdgeModules(tensors: EdgeTensors, ctx: Ctx, read: Read): Promise<EdgeModules | undefined> {
  const { config, base } = ctx;
  const V = base.vocabSize;
  const H = base.hiddenSize;
  const out: EdgeModules = {};
  if (config.useDora) {
    throw unsupported(ctx, 'use_dora', 'DoRA together with embedding / lm_head adapters is not served');
  }
  const { embeddingLora: e, lmHeadLora: h } = tensors;
  if (e.a || e.b || h.a || h.b) {
    const modules = baseModules(base.numLayers, 'model.', base.family);
    const targeted = new Set(resolveTargetedModules(config, modules, base.family).map((m) => m.name));
    for (const [has, name] of [
      [e.a ?? e.b, 'model.embed_tokens'],
      [h.a ?? h.b, 'lm_head'],
    ] as const) {
      if (has && !targeted.has(name)) {
        throw createError('ADAPTER_TENSOR_UNEXPECTED', {
          file: ctx.file,
          field: `tensor '${has.tensor}'`,
          problem: `adapts module '${name}', which ${config.file} does not target (target_modules)`,
          hint: 'the config and the weights disagree; save both from the same adapter',
        });
      }
    }
  }
  if (e.a || e.b) {
    const a = need(ctx, e.a, 'lora_embedding_A', 'model.embed_tokens');
    const b = need(ctx, e.b, 'lora_embedding_B', 'model.embed_tokens');
    const rank = a.shape[0];
    checkShape(ctx, a, [rank, V], 'LoRA A of embed_tokens is [r, vocab_size]');
    checkShape(ctx, b, [H, rank], 'LoRA B of embed_tokens is [hidden_size, r]');
    const aRV = await read(a.tensor);
    out.embeddingLora = {
      ...rankAndScale(ctx, 'model.embed_tokens', rank),
      a: transpose(aRV, rank, V),
      b: await read(b.tensor),
    };
  }
  if (h.a || h.b) {
    const a = need(ctx, h.a, 'lora_A', 'lm_head');
    const b = need(ctx, h.b, 'lora_B', 'lm_head');
    const rank = a.shape[0];
    checkShape(ctx, a, [rank, H], 'LoRA A of lm_head is [r, hidden_size]');
    checkShape(ctx, b, [V, rank], 'LoRA B of lm_head is [vocab_size, r]');
    out.lmHeadLora = { ...rankAndScale(ctx, 'lm_head', rank), a: await read(a.tensor), b: await read(b.tensor) };
  }
  await readSavedCopies(tensors, ctx, read, out);
  const ids = config.trainableTokenIndices;
  if (tensors.tokenRows || ids.length > 0) {
    if (!tensors.tokenRows || ids.length === 0) {
      throw createError(tensors.tokenRows ? 'ADAPTER_TENSOR_UNEXPECTED' : 'ADAPTER_TENSOR_MISSING', {
        file: ctx.file,
        problem: tensors.tokenRows
          ? `holds trainable_tokens_delta but ${config.file} sets no trainable_token_indices`
          : `has no embed_tokens.token_adapter.trainable_tokens_delta for trainable_token_indices in ${config.file}`,
        hint: 'the config and the weights disagree; save both from the same adapter',
      });
    }
    const beyond = ids.find((i) => i >= V);
    if (beyond !== undefined) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file: config.file,
        field: 'trainable_token_indices',
        problem: `token ${beyond} is beyond the base model's vocabulary (vocab_size ${V}); new tokens need a resized vocabulary, which is not served`,
      });
    }
    checkShape(
      ctx,
      tensors.tokenRows,
      [ids.length, H],
      'trainable_tokens_delta is [number of trainable tokens, hidden_size]',
    );
    out.tokens = {
      ids: Int32Array.from(ids),
      rows: await read(tensors.tokenRows.tensor),
      tiedHead: base.tieWordEmbeddings,
    };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * A VeRA adapter's edge modules: only saved copies (modules_to_save), since VeRA adapts nn.Linear projections
 * only; anything else outside the layers is refused naming the tensor.
 */
export async function loadVeraSavedModules(
  tensors: EdgeTensors,
  ctx: SavedCtx & { modulesToSave: string[] },
  read: Read,
): Promise<EdgeModules | undefined> {
  const other = [tensors.embeddingLora.a, tensors.embeddingLora.b, tensors.lmHeadLora.a, tensors.lmHeadLora.b];
  const stray = [...other, tensors.tokenRows].find((t) => t);
  if (stray) {
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file: ctx.file,
      field: `tensor '${stray.tensor}'`,
      problem:
        "is not a VeRA tensor nor a saved module (VeRA adapts the layers' projections; modules_to_save copies whole modules)",
      hint: "save the adapter with PEFT's save_pretrained, one adapter per directory",
    });
  }
  const saved = [tensors.embedding, tensors.lmHead, tensors.finalNorm, tensors.layerNorms[0]?.tensor].find((t) => t);
  if (!saved) return undefined;
  if (ctx.modulesToSave.length === 0) {
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file: ctx.file,
      field: `tensor '${saved.tensor}'`,
      problem: `is a saved module, but ${ctx.config.file} has no modules_to_save`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
  const out: EdgeModules = {};
  await readSavedCopies(tensors, ctx, read, out);
  return out;
}

/** Where saved copies are checked: the base, the weights file and the config, for messages. */
interface SavedCtx {
  base: ModelConfig;
  file: string;
  config: { file: string; baseModelNameOrPath: string | null };
}

/** modules_to_save copies (embed_tokens, lm_head, the final and the layers' norms), checked against the base. */
async function readSavedCopies(tensors: EdgeTensors, ctx: SavedCtx, read: Read, out: EdgeModules): Promise<void> {
  const { base } = ctx;
  const V = base.vocabSize;
  const H = base.hiddenSize;
  if (tensors.embedding) {
    checkShape(ctx, tensors.embedding, [V, H], 'a saved embed_tokens is [vocab_size, hidden_size]');
    out.embedding = await read(tensors.embedding.tensor);
  }
  if (tensors.lmHead) {
    checkShape(ctx, tensors.lmHead, [V, H], 'a saved lm_head is [vocab_size, hidden_size]');
    out.lmHead = await read(tensors.lmHead.tensor);
  }
  if (tensors.finalNorm) {
    checkShape(ctx, tensors.finalNorm, [H], 'a saved norm is [hidden_size]');
    out.finalNorm = await read(tensors.finalNorm.tensor);
  }
  for (const n of tensors.layerNorms) {
    if (n.layer >= base.numLayers) {
      throw createError('ADAPTER_BASE_MISMATCH', {
        file: ctx.file,
        problem: `tensor '${n.tensor.tensor}' is for layer ${n.layer}; the base model has ${base.numLayers} layers`,
        baseModel: ctx.config.baseModelNameOrPath,
      });
    }
    checkShape(ctx, n.tensor, [H], 'a saved layer norm is [hidden_size]');
    const layerNorms = out.layerNorms ?? [];
    layerNorms.push({ layer: n.layer, norm: n.norm, weight: await read(n.tensor.tensor) });
    out.layerNorms = layerNorms;
  }
}

function rankAndScale(ctx: Ctx, moduleName: string, rank: number): Pick<LowRankTable, 'rank' | 'scale'> {
  const { config } = ctx;
  const rankHit = patternValue(config.rankPattern, moduleName, config.file, 'rank_pattern');
  const alphaHit = patternValue(config.alphaPattern, moduleName, config.file, 'alpha_pattern');
  const declared = rankHit?.value ?? config.r;
  const rankSource = rankHit ? `rank_pattern[${JSON.stringify(rankHit.pattern)}]` : "'r'";
  checkRankLimit(config.file, declared, rankSource, ctx.maxLoraRank);
  if (declared !== rank) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file: ctx.file,
      field: `${moduleName} LoRA factors`,
      problem: `have rank ${rank}; ${config.file} gives it rank ${declared} (${rankSource})`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
  const alpha = alphaHit?.value ?? config.loraAlpha;
  const scale = config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
  if (!Number.isFinite(scale) || Math.abs(scale) > MAX_LORA_SCALE) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: config.file,
      field: alphaHit ? `alpha_pattern[${JSON.stringify(alphaHit.pattern)}]` : 'lora_alpha',
      problem: `gives '${moduleName}' the scale ${scale}; it must be finite and at most ${MAX_LORA_SCALE} in magnitude`,
    });
  }
  return { rank, scale };
}

function need(ctx: Ctx, t: TensorShape | undefined, factor: string, moduleName: string): TensorShape {
  if (t) return t;
  throw createError('ADAPTER_TENSOR_MISSING', {
    file: ctx.file,
    problem: `module '${moduleName}' has LoRA factors but no ${factor}`,
    hint: 'the file is incomplete; re-save the adapter',
  });
}

function checkShape(ctx: SavedCtx, t: TensorShape, want: number[], what: string): void {
  if (t.shape.length === want.length && t.shape.every((d, i) => d === want[i])) return;
  const V = ctx.base.vocabSize;
  const resized = want.includes(V) && t.shape.length === want.length && t.shape.some((d, i) => want[i] === V && d > V);
  throw createError(resized ? 'ADAPTER_UNSUPPORTED_FEATURE' : 'ADAPTER_TENSOR_SHAPE', {
    file: ctx.file,
    field: `tensor '${t.tensor}'`,
    problem: resized
      ? `has shape [${t.shape.join(', ')}]: a vocabulary resized beyond the base model's ${V} tokens is not served (${what})`
      : `has shape [${t.shape.join(', ')}]; ${what}: [${want.join(', ')}] for this base model`,
    hint: resized ? 'serve it on a base model saved with the resized vocabulary, or merge it' : undefined,
  });
}

function unsupported(ctx: Ctx, field: string, problem: string) {
  return createError('ADAPTER_UNSUPPORTED_FEATURE', { file: ctx.config.file, field, problem });
}

/** [r, V] → [V, r], so a token's r values are one contiguous table row. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = m[i * cols + j];
  return t;
}
