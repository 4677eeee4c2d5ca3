/**
 * The context length: what the model allows (its config.json, as vLLM's `_get_and_verify_max_len` reads it),
 * lowered by --max-model-len, and held against the KV cache.
 *
 *   modelMaxLen({ max_position_embeddings: 4096, rope_scaling: { type: 'linear', factor: 2 } }) // → 8192
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseModelConfig } from '../model/config-parse.ts';
import { ggufModelFile, readGgufModelConfig } from '../model/gguf/load.ts';

type Json = Record<string, unknown>;

/** RoPE types whose factor does not lengthen the context past max_position_embeddings (vLLM's list). */
const NO_EXTENSION = new Set(['default', 'llama3', 'su', 'longrope', 'mrope']);

/**
 * The longest sequence the model allows, from config.json's fields: max_position_embeddings (the family's
 * default when absent), times the RoPE scaling factor for types that extend the context (linear, dynamic,
 * yarn — yarn from original_max_position_embeddings when given). llama3 does not multiply: its
 * max_position_embeddings already is the extended length.
 */
export function modelMaxLen(json: Json, maxPositionEmbeddings?: number): number {
  const base = maxPositionEmbeddings ?? (json.max_position_embeddings as number);
  const rope = (json.rope_parameters ?? json.rope_scaling ?? null) as Json | null;
  if (rope === null || typeof rope !== 'object') return base;
  const type = String(rope.rope_type ?? rope.type ?? 'default');
  if (NO_EXTENSION.has(type)) return base;
  const factor = rope.factor;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0) {
    throw new Error(`config.json: rope scaling '${type}' needs a positive 'factor' (got ${JSON.stringify(factor)})`);
  }
  const original = rope.original_max_position_embeddings;
  const from = type === 'yarn' && typeof original === 'number' ? original : base;
  return Math.floor(from * factor);
}

/** Reads the model directory's config.json: its context limit, checked as the engine will check it. */
export async function readModelMaxLen(modelDir: string): Promise<number> {
  const gguf = await ggufModelFile(modelDir);
  if (gguf !== null) return (await readGgufModelConfig(gguf)).maxPositionEmbeddings;
  const file = join(modelDir, 'config.json');
  const json = JSON.parse(await readFile(file, 'utf8')) as Json;
  const config = parseModelConfig(json, file);
  return modelMaxLen(json, config.maxPositionEmbeddings);
}

export interface ContextLength {
  maxModelLen: number;
  /** Said once at start-up when the length was lowered to fit the KV cache. */
  warning: string | null;
}

/**
 * --max-model-len may lower the model's limit, never raise it (vLLM refuses too). A KV cache smaller than
 * one sequence of that length: an error when --max-model-len was given (as vLLM refuses to start); when it
 * was not, the length is clamped to the cache with a warning, so the default cache starts any model.
 */
export function resolveMaxModelLen(opts: {
  modelMax: number;
  requested: number | undefined;
  kvCacheTokens: number;
}): ContextLength {
  const { modelMax, requested, kvCacheTokens } = opts;
  if (requested !== undefined) {
    if (requested > modelMax) {
      throw new Error(
        `--max-model-len ${requested} is above the model's limit of ${modelMax} tokens ` +
          `(config.json: max_position_embeddings and rope scaling); give at most ${modelMax}`,
      );
    }
    if (requested > kvCacheTokens) {
      throw new Error(
        `--kv-cache-tokens ${kvCacheTokens} cannot hold one sequence of --max-model-len ${requested}: ` +
          `raise --kv-cache-tokens to at least ${requested} or lower --max-model-len`,
      );
    }
    return { maxModelLen: requested, warning: null };
  }
  if (modelMax > kvCacheTokens) {
    return {
      maxModelLen: kvCacheTokens,
      warning:
        `the model allows ${modelMax} tokens but --kv-cache-tokens is ${kvCacheTokens}: ` +
        `max_model_len is ${kvCacheTokens} (raise --kv-cache-tokens, or set --max-model-len to silence this)`,
    };
  }
  return { maxModelLen: modelMax, warning: null };
}
