/**
 * The `lora` request field: per-request scale and weighted combination of adapters, as llama.cpp's server
 * spells it (`lora: [{id, scale}]`), with names instead of load-order ids: `lora: [{"name": "sql", "scale": 0.7},
 * {"name": "chat", "scale": 0.3}]`. Chosen over LoRAX's `merged_adapters {ids, weights, merge_strategy}`: one
 * list of self-describing entries, and the only strategy served exactly for any ranks is concatenation
 * (compose.ts), so there is nothing to choose. `model` stays what OpenAI clients require: the base model or
 * one of the listed adapters.
 */
import { type AdapterPart, checkParts } from '../adapters/compose.ts';
import { createError } from '../observability/errors.ts';
import type { ServerContext } from './context.ts';
import { truncated } from './error-mapping.ts';

export interface LoraEntry {
  name: string;
  scale?: number;
}

export const loraSchema = {
  type: ['array', 'null'],
  maxItems: 64, // past the parse's own limit (MAX_COMPONENTS), so that one says what is allowed
  items: {
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1, maxLength: 256 }, scale: { type: 'number' } },
  },
} as const;

/** The request's combination (null when `lora` is absent), its names checked against the served adapters. */
export function loraParts(
  ctx: ServerContext,
  lora: LoraEntry[] | null | undefined,
  model: string | null,
): AdapterPart[] | null {
  if (lora === undefined || lora === null) return null;
  const parts = lora.map((e) => ({ name: e.name, weight: e.scale ?? 1 }));
  checkParts(parts);
  const served = new Set(ctx.engine.adapters.map((a) => a.name));
  for (const [i, p] of parts.entries()) {
    if (!served.has(p.name)) {
      const param = `lora[${i}].name`;
      throw createError(
        'REQUEST_INVALID',
        { message: `'${param}': no adapter '${truncated(p.name)}' is served` },
        { param },
      );
    }
  }
  if (model !== null && !parts.some((p) => p.name === model)) {
    const message = `'model' names adapter '${model}', which 'lora' does not list: name the base model or one of its adapters`;
    throw createError('REQUEST_INVALID', { message }, { param: 'model' });
  }
  return parts;
}
