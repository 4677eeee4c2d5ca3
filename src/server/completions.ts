/**
 * POST /v1/completions and /v1/chat/completions, streaming (SSE) or not. A client that goes away has its
 * sequence aborted, which frees its KV blocks and adapter pin in the engine's next step.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenEvent } from '../engine/async-engine.ts';
import type { SamplingParams } from '../engine/sampling-params.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { createError } from '../observability/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.ts';
import { resolveModel, type ServerContext } from './app.ts';

interface SamplingBody {
  model: string;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  ignore_eos?: boolean;
  min_tokens?: number;
  n?: number;
  stop?: string | string[] | null;
}

interface CompletionBody extends SamplingBody {
  prompt: string | number[];
}

interface ChatBody extends SamplingBody {
  messages: { role: string; content: string }[];
}

const samplingProperties = {
  model: { type: 'string', minLength: 1 },
  max_tokens: { type: 'integer', minimum: 1 },
  max_completion_tokens: { type: 'integer', minimum: 1 },
  temperature: { type: 'number', minimum: 0, maximum: 2 },
  top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: 'integer', minimum: -1 },
  seed: { type: 'integer' },
  stream: { type: 'boolean' },
  stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
  ignore_eos: { type: 'boolean' },
  min_tokens: { type: 'integer', minimum: 0 },
  n: { type: 'integer', minimum: 1, maximum: 1 },
  stop: { anyOf: [{ type: 'null' }, { type: 'string' }, { type: 'array', items: { type: 'string' } }] },
};

const completionSchema = {
  body: {
    type: 'object',
    required: ['model', 'prompt'],
    properties: {
      ...samplingProperties,
      prompt: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 }] },
    },
  },
};

const chatSchema = {
  body: {
    type: 'object',
    required: ['model', 'messages'],
    properties: {
      ...samplingProperties,
      messages: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['role', 'content'],
          properties: { role: { type: 'string' }, content: { type: 'string' } },
        },
      },
    },
  },
};

function samplingOf(body: SamplingBody): Partial<SamplingParams> {
  const stop = body.stop;
  if (stop !== undefined && stop !== null && (typeof stop === 'string' || stop.length > 0)) {
    throw createError(
      'REQUEST_INVALID',
      { message: "'stop' strings are not supported yet; use max_tokens" },
      { param: 'stop' },
    );
  }
  const p: Partial<SamplingParams> = { maxTokens: body.max_completion_tokens ?? body.max_tokens ?? 16 };
  if (body.temperature !== undefined) p.temperature = body.temperature;
  if (body.top_p !== undefined) p.topP = body.top_p;
  if (body.top_k !== undefined) p.topK = Math.max(body.top_k, 0); // vLLM's -1 = off
  if (body.seed !== undefined) p.seed = body.seed >>> 0;
  if (body.ignore_eos !== undefined) p.ignoreEos = body.ignore_eos;
  if (body.min_tokens !== undefined) p.minTokens = body.min_tokens;
  return p;
}

interface Flavor {
  object: string;
  chunkObject: string;
  choice(text: string, finish: FinishReason | null): Record<string, unknown>;
  delta(text: string, finish: FinishReason | null, first: boolean): Record<string, unknown>;
}

const completionFlavor: Flavor = {
  object: 'text_completion',
  chunkObject: 'text_completion',
  choice: (text, finish) => ({ index: 0, text, finish_reason: finish, logprobs: null }),
  delta: (text, finish) => ({ index: 0, text, finish_reason: finish, logprobs: null }),
};

const chatFlavor: Flavor = {
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (text, finish) => ({
    index: 0,
    message: { role: 'assistant', content: text },
    finish_reason: finish,
    logprobs: null,
  }),
  delta: (text, finish, first) => ({
    index: 0,
    delta: first ? { role: 'assistant', content: text } : text ? { content: text } : {},
    finish_reason: finish,
    logprobs: null,
  }),
};

export function registerCompletionRoutes(app: FastifyInstance, ctx: ServerContext, metrics: Metrics) {
  app.post(
    '/v1/completions',
    { schema: completionSchema },
    async (req: FastifyRequest<{ Body: CompletionBody }>, reply) => {
      const body = req.body;
      const adapter = resolveModel(ctx, body.model);
      const promptIds = typeof body.prompt === 'string' ? ctx.codec.encode(body.prompt) : body.prompt;
      return serve(ctx, metrics, reply, body, adapter, promptIds, completionFlavor);
    },
  );

  app.post('/v1/chat/completions', { schema: chatSchema }, async (req: FastifyRequest<{ Body: ChatBody }>, reply) => {
    const body = req.body;
    const adapter = resolveModel(ctx, body.model);
    const promptIds = ctx.codec.encodeChat(body.messages);
    return serve(ctx, metrics, reply, body, adapter, promptIds, chatFlavor);
  });
}

async function serve(
  ctx: ServerContext,
  metrics: Metrics,
  reply: FastifyReply,
  body: SamplingBody,
  adapter: string | null,
  promptIds: number[],
  flavor: Flavor,
) {
  if (ctx.lifecycle.draining) throw createError('SERVER_DRAINING', {});
  ctx.lifecycle.begin();
  try {
    return await respond(ctx, metrics, reply, body, adapter, promptIds, flavor);
  } finally {
    ctx.lifecycle.end();
  }
}

async function respond(
  ctx: ServerContext,
  metrics: Metrics,
  reply: FastifyReply,
  body: SamplingBody,
  adapter: string | null,
  promptIds: number[],
  flavor: Flavor,
) {
  const vocab = ctx.engine.info.vocabSize;
  if (promptIds.length === 0)
    throw createError('REQUEST_INVALID', { message: 'the prompt is empty' }, { param: 'prompt' });
  if (promptIds.some((id) => id >= vocab)) {
    throw createError(
      'REQUEST_INVALID',
      { message: `token ids must be below the vocabulary size ${vocab}` },
      { param: 'prompt' },
    );
  }
  const params = samplingOf(body);
  const maxLen = ctx.engine.info.maxModelLen;
  if (promptIds.length + (params.maxTokens ?? 16) > maxLen) {
    throw createError(
      'REQUEST_INVALID',
      {
        message: `prompt (${promptIds.length} tokens) + max_tokens (${params.maxTokens}) exceeds the context length ${maxLen}`,
      },
      { param: 'max_tokens' },
    );
  }
  const id = `${flavor.object === 'text_completion' ? 'cmpl' : 'chatcmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const abort = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  const detok = new IncrementalDetokenizer(ctx.codec.tokenizer, { promptIds, skipSpecialTokens: true });
  const tokens = metered(
    metrics,
    ctx.engine.generate(promptIds, adapter, params, abort.signal),
    adapter,
    promptIds.length,
  );
  let completion = 0;
  let finish: FinishReason | null = null;

  if (!body.stream) {
    let text = '';
    for await (const e of tokens) {
      for (const t of e.tokens) text += detok.push(t);
      completion += e.tokens.length;
      finish = e.finishReason;
    }
    text += detok.finish();
    return {
      id,
      object: flavor.object,
      created,
      model: body.model,
      choices: [flavor.choice(text, finish === 'abort' ? 'stop' : finish)],
      usage: {
        prompt_tokens: promptIds.length,
        completion_tokens: completion,
        total_tokens: promptIds.length + completion,
      },
    };
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
  const chunk = (choice: Record<string, unknown>) => ({
    id,
    object: flavor.chunkObject,
    created,
    model: body.model,
    choices: [choice],
  });
  let first = true;
  try {
    for await (const e of tokens) {
      let text = '';
      for (const t of e.tokens) text += detok.push(t);
      completion += e.tokens.length;
      finish = e.finishReason;
      if (finish) text += detok.finish();
      if (text || finish || first) {
        send(chunk(flavor.delta(text, finish, first)));
        first = false;
      }
    }
    if (body.stream_options?.include_usage) {
      send({
        id,
        object: flavor.chunkObject,
        created,
        model: body.model,
        choices: [],
        usage: {
          prompt_tokens: promptIds.length,
          completion_tokens: completion,
          total_tokens: promptIds.length + completion,
        },
      });
    }
    res.write('data: [DONE]\n\n');
  } catch (err) {
    send({ error: { message: (err as Error).message, type: 'server_error', param: null, code: 'INTERNAL_ERROR' } });
  } finally {
    res.end();
  }
  return reply;
}

/** Passes the engine's tokens through, recording time to first token and, at the end, the request's counts. */
async function* metered(
  metrics: Metrics,
  events: AsyncGenerator<TokenEvent>,
  adapter: string | null,
  promptTokens: number,
) {
  const started = performance.now();
  let generated = 0;
  let reason = 'abort';
  try {
    for await (const e of events) {
      if (generated === 0) metrics.timeToFirstToken.observe((performance.now() - started) / 1000);
      generated += e.tokens.length;
      if (e.finishReason) reason = e.finishReason;
      yield e;
    }
  } finally {
    metrics.finished(adapter, promptTokens, generated, reason);
  }
}
