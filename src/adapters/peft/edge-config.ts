/**
 * The adapter_config.json fields of adapters that change the model outside its decoder projections:
 * `modules_to_save` (whole per-adapter copies of modules) and `trainable_token_indices` (PEFT TrainableTokens:
 * some rows of embed_tokens replaced, and of a tied lm_head). Which copies exist is read from the saved tensors
 * (PEFT matches modules_to_save entries by name suffix: "norm" also saves every layer's …layernorm); here only
 * the entries loraplex cannot serve are refused, by name.
 */
import { createError } from '../../observability/errors.ts';
import { type Json, shown } from './config-fields.ts';

/** modules_to_save entries whose saved tensors loraplex serves (embedding, lm_head, RMSNorm weights). */
export const SAVABLE_MODULES = [
  'embed_tokens',
  'model.embed_tokens',
  'lm_head',
  'norm',
  'model.norm',
  'input_layernorm',
  'post_attention_layernorm',
];

export interface EdgeConfig {
  modulesToSave: string[];
  trainableTokenIndices: number[]; // sorted, distinct
}

export function readEdgeConfig(json: Json, file: string): EdgeConfig {
  return {
    modulesToSave: readModulesToSave(json.modules_to_save, file),
    trainableTokenIndices: readTrainableTokens(json.trainable_token_indices, file),
  };
}

/** modules_to_save: a list of names loraplex serves saved copies of (LoRA's and VeRA's configs alike). */
export function readModulesToSave(value: unknown, file: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'modules_to_save',
      problem: `${shown(value)} must be a list of module names`,
    });
  }
  for (const name of value as string[]) {
    if (!SAVABLE_MODULES.includes(name)) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file,
        field: 'modules_to_save',
        problem: `${shown(name)} is not served; saved copies of ${SAVABLE_MODULES.join(', ')} are`,
        hint: 'retrain without that module in modules_to_save, or merge the adapter into the base model',
      });
    }
  }
  return value as string[];
}

/** A list of token ids, or {"embed_tokens": [ids]} (PEFT's per-module form). */
function readTrainableTokens(value: unknown, file: string): number[] {
  if (value === undefined || value === null) return [];
  let ids = value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    for (const key of Object.keys(value as Json)) {
      if (key !== 'embed_tokens') {
        throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
          file,
          field: `trainable_token_indices[${shown(key)}]`,
          problem: 'trainable tokens are served on embed_tokens (and a tied lm_head) only',
        });
      }
    }
    ids = (value as Json).embed_tokens ?? [];
  }
  if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0)) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'trainable_token_indices',
      problem: `${shown(value)} must be a list of token ids, or {"embed_tokens": [token ids]}`,
    });
  }
  const sorted = [...new Set(ids as number[])].sort((a, b) => a - b);
  if (sorted.length !== ids.length) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'trainable_token_indices',
      problem: `${shown(value)} names a token more than once`,
    });
  }
  return ids as number[]; // in file order: row i of trainable_tokens_delta is token ids[i]
}
