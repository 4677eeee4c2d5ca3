/**
 * The sampling fields of an OpenAI request (plus vLLM's extras: top_k, min_tokens, ignore_eos, stop_token_ids,
 * include_stop_str_in_output) → engine parameters, checked, with 400s that name the field. Stop strings stay
 * on the server (they are matched on text); everything else goes to the engine.
 */
import { MAX_LOGPROBS } from '../engine/logprobs.ts';
import { MAX_LOGIT_BIAS, MAX_PENALTY, type SamplingParams } from '../engine/sampling-params.ts';
import { createError } from '../observability/errors.ts';

/** Most choices per request (OpenAI caps n at 128; each is a sequence in the batch here). */
export const MAX_CHOICES = 16;
/** Most stop strings per request (OpenAI allows 4, vLLM any number). */
export const MAX_STOP_STRINGS = 16;
/** Longest stop string: every generated token is matched against each one. */
export const MAX_STOP_CHARS = 1024;
/** Most stop token ids: every generated token is looked up among them. */
export const MAX_STOP_TOKEN_IDS = 1024;
/** Most logit_bias entries: each is applied to the row at every step. */
export const MAX_LOGIT_BIAS_ENTRIES = 1024;

/** Every field but `model` may be null, which means its default (as OpenAI's reference allows). */
export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  ignore_eos?: boolean | null;
  min_tokens?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  stop_token_ids?: number[] | null;
  include_stop_str_in_output?: boolean | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  /** Token id (as a string) → bias added to its logit. */
  logit_bias?: Record<string, number> | null;
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
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: ['integer', 'null'], minimum: -1 },
  seed: { type: ['integer', 'null'] },
  stream: { type: ['boolean', 'null'] },
  stream_options: { type: ['object', 'null'], properties: { include_usage: { type: ['boolean', 'null'] } } },
  ignore_eos: { type: ['boolean', 'null'] },
  min_tokens: { type: ['integer', 'null'], minimum: 0 },
  n: { type: ['integer', 'null'] },
  stop: {
    anyOf: [
      { type: ['string', 'null'], maxLength: MAX_STOP_CHARS },
      { type: 'array', items: { type: 'string', maxLength: MAX_STOP_CHARS } },
    ],
  },
  stop_token_ids: { type: ['array', 'null'], items: { type: 'integer' }, maxItems: MAX_STOP_TOKEN_IDS },
  include_stop_str_in_output: { type: ['boolean', 'null'] },
  presence_penalty: { type: ['number', 'null'], minimum: -MAX_PENALTY, maximum: MAX_PENALTY },
  frequency_penalty: { type: ['number', 'null'], minimum: -MAX_PENALTY, maximum: MAX_PENALTY },
  repetition_penalty: { type: ['number', 'null'], exclusiveMinimum: 0 },
  logit_bias: {
    type: ['object', 'null'],
    additionalProperties: { type: 'number', minimum: -MAX_LOGIT_BIAS, maximum: MAX_LOGIT_BIAS },
    maxProperties: MAX_LOGIT_BIAS_ENTRIES,
  },
};

export interface SamplingRequest {
  /** Engine parameters of choice 0 but maxTokens (choiceParams gives each choice's). */
  params: Partial<SamplingParams>;
  /** max_completion_tokens or max_tokens; null: the rest of the context (OpenAI's and vLLM's default). */
  maxTokens: number | null;
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
  for (const key of Object.keys(body.stream_options ?? {})) {
    if (key !== 'include_usage') {
      const name = key.slice(0, 64);
      throw createError('PARAMETER_UNSUPPORTED', { param: `stream_options.${name}` }, { param: 'stream_options' });
    }
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

  const p: Partial<SamplingParams> = {};
  if (body.temperature != null) p.temperature = body.temperature;
  if (body.top_p != null) p.topP = body.top_p;
  if (body.top_k != null) p.topK = Math.max(body.top_k, 0); // vLLM's -1 = off
  if (body.seed != null) p.seed = body.seed >>> 0;
  if (body.ignore_eos != null) p.ignoreEos = body.ignore_eos;
  if (body.min_tokens != null) p.minTokens = body.min_tokens;
  if (stopTokenIds.length > 0) p.stopTokenIds = stopTokenIds;
  if (logprobs !== null) p.logprobs = logprobs;
  if (body.presence_penalty != null) p.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty != null) p.frequencyPenalty = body.frequency_penalty;
  if (body.repetition_penalty != null) p.repetitionPenalty = body.repetition_penalty;
  const bias = logitBias(body.logit_bias, vocabSize);
  if (bias.length > 0) p.logitBias = bias;
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
  return { params: p, maxTokens, n, stop, includeStopStr: body.include_stop_str_in_output ?? false };
}

/** logit_bias's {"token id": bias} → (id, bias) pairs, each id a token of this vocabulary. */
function logitBias(bias: Record<string, number> | null | undefined, vocabSize: number): [number, number][] {
  return Object.entries(bias ?? {}).map(([key, value]) => {
    const id = Number(key);
    if (!/^\d+$/.test(key) || id >= vocabSize) {
      invalid(
        'logit_bias',
        `'logit_bias' keys must be token ids below the vocabulary size ${vocabSize} (got '${key.slice(0, 32)}')`,
      );
    }
    return [id, value];
  });
}

/** The output tokens a prompt of `promptTokens` may get: the request's max, else the rest of the context. */
export function maxTokensFor(request: SamplingRequest, promptTokens: number, maxModelLen: number): number {
  return request.maxTokens ?? Math.max(maxModelLen - promptTokens, 0);
}

/**
 * Engine parameters of choice `i`: with a seed, choice i samples with seed + i (as vLLM's parallel sampling),
 * so choices differ yet repeat; choice 0 is what n = 1 gives.
 */
export function choiceParams(request: SamplingRequest, i: number, maxTokens: number): Partial<SamplingParams> {
  const seed = request.params.seed;
  if (seed === undefined || seed === null || i === 0) return { ...request.params, maxTokens };
  return { ...request.params, maxTokens, seed: (seed + i) >>> 0 };
}
