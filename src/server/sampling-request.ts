/**
 * The sampling fields of an OpenAI request (plus vLLM's extras: top_k, min_tokens, ignore_eos, stop_token_ids,
 * include_stop_str_in_output) → engine parameters, checked, with 400s that name the field. Stop strings stay
 * on the server (they are matched on text); everything else goes to the engine.
 */
import { MAX_LOGPROBS } from '../engine/logprobs.ts';
import type { SamplingParams } from '../engine/sampling-params.ts';
import { createError } from '../observability/errors.ts';

/** Most choices per request (OpenAI caps n at 128; each is a sequence in the batch here). */
export const MAX_CHOICES = 16;
/** Most stop strings per request (OpenAI allows 4, vLLM any number). */
export const MAX_STOP_STRINGS = 16;
/** Longest stop string: every generated token is matched against each one. */
export const MAX_STOP_CHARS = 1024;
/** Most stop token ids: every generated token is looked up among them. */
export const MAX_STOP_TOKEN_IDS = 1024;

export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  ignore_eos?: boolean;
  min_tokens?: number;
  n?: number | null;
  stop?: string | string[] | null;
  stop_token_ids?: number[] | null;
  include_stop_str_in_output?: boolean;
}

/**
 * JSON-schema properties of the fields above (fastify validates types; ranges are checked below). Nullable
 * fields list their types rather than anyOf a null: fastify's Ajv coerces types, and under anyOf it would turn
 * 0 or "" into null.
 */
export const samplingProperties = {
  model: { type: 'string', minLength: 1 },
  max_tokens: { type: ['integer', 'null'], minimum: 1 },
  max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
  temperature: { type: 'number', minimum: 0, maximum: 2 },
  top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: 'integer', minimum: -1 },
  seed: { type: 'integer' },
  stream: { type: 'boolean' },
  stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
  ignore_eos: { type: 'boolean' },
  min_tokens: { type: 'integer', minimum: 0 },
  n: { type: ['integer', 'null'] },
  stop: {
    anyOf: [
      { type: ['string', 'null'], maxLength: MAX_STOP_CHARS },
      { type: 'array', items: { type: 'string', maxLength: MAX_STOP_CHARS } },
    ],
  },
  stop_token_ids: { type: ['array', 'null'], items: { type: 'integer' }, maxItems: MAX_STOP_TOKEN_IDS },
  include_stop_str_in_output: { type: 'boolean' },
};

export interface SamplingRequest {
  /** Engine parameters of choice 0 (choiceParams gives the others). */
  params: Partial<SamplingParams>;
  n: number;
  stop: string[];
  includeStopStr: boolean;
}

function invalid(param: string, message: string): never {
  throw createError('REQUEST_INVALID', { message }, { param });
}

/** A logprobs count (completions' logprobs, chat's top_logprobs): absent → null, else 0..MAX_LOGPROBS. */
export function logprobsCount(value: number | null | undefined, param: string): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isInteger(value) || value < 0 || value > MAX_LOGPROBS) {
    invalid(param, `'${param}' must be an integer between 0 and ${MAX_LOGPROBS} (got ${value})`);
  }
  return value;
}

/** `logprobs`: how many top logprobs per token the flavor's fields ask for (null: none). */
export function samplingRequest(body: SamplingBody, logprobs: number | null, vocabSize: number): SamplingRequest {
  const n = body.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
    invalid('n', `'n' must be an integer between 1 and ${MAX_CHOICES} (got ${n})`);
  }
  const stop =
    body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (stop.length > MAX_STOP_STRINGS) {
    invalid('stop', `'stop' takes at most ${MAX_STOP_STRINGS} strings (got ${stop.length})`);
  }
  if (stop.some((s) => s.length === 0)) invalid('stop', "'stop' cannot contain an empty string");
  const stopTokenIds = body.stop_token_ids ?? [];
  const badId = stopTokenIds.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (badId !== undefined) {
    invalid(
      'stop_token_ids',
      `'stop_token_ids' must be token ids below the vocabulary size ${vocabSize} (got ${badId})`,
    );
  }

  const p: Partial<SamplingParams> = { maxTokens: body.max_completion_tokens ?? body.max_tokens ?? 16 };
  if (body.temperature !== undefined) p.temperature = body.temperature;
  if (body.top_p !== undefined) p.topP = body.top_p;
  if (body.top_k !== undefined) p.topK = Math.max(body.top_k, 0); // vLLM's -1 = off
  if (body.seed !== undefined) p.seed = body.seed >>> 0;
  if (body.ignore_eos !== undefined) p.ignoreEos = body.ignore_eos;
  if (body.min_tokens !== undefined) p.minTokens = body.min_tokens;
  if (stopTokenIds.length > 0) p.stopTokenIds = stopTokenIds;
  if (logprobs !== null) p.logprobs = logprobs;
  return { params: p, n, stop, includeStopStr: body.include_stop_str_in_output ?? false };
}

/**
 * Engine parameters of choice `i`: with a seed, choice i samples with seed + i (as vLLM's parallel sampling),
 * so choices differ yet repeat; choice 0 is what n = 1 gives.
 */
export function choiceParams(request: SamplingRequest, i: number): Partial<SamplingParams> {
  const seed = request.params.seed;
  if (seed === undefined || seed === null || i === 0) return request.params;
  return { ...request.params, seed: (seed + i) >>> 0 };
}
