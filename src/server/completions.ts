/**
 * POST /v1/completions and /v1/chat/completions, streaming (SSE) or not, with n choices (one engine sequence
 * each, in the same batches), stop strings and logprobs. A client that goes away has its sequences aborted,
 * which frees their KV blocks and adapter pins in the engine's next step; so does a stop string's match.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { createError } from '../observability/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { resolveModel, type ServerContext } from './app.ts';
import { ChoiceDecoder, type ChoiceDelta } from './choice-decoder.ts';
import { CompletionLogprobsBuilder, chatLogprobs, TokenTexts } from './logprobs.ts';
import {
  choiceParams,
  logprobsCount,
  type SamplingBody,
  type SamplingRequest,
  samplingProperties,
  samplingRequest,
} from './sampling-request.ts';

interface CompletionBody extends SamplingBody {
  prompt: string | number[];
  /** Top logprobs per token (0: only the sampled token's). */
  logprobs?: number | null;
}

interface ChatBody extends SamplingBody {
  messages: { role: string; content: string }[];
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}

const completionSchema = {
  body: {
    type: 'object',
    required: ['model', 'prompt'],
    properties: {
      ...samplingProperties,
      prompt: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 }] },
      logprobs: { type: ['integer', 'null'] },
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
      logprobs: { type: ['boolean', 'null'] },
      top_logprobs: { type: ['integer', 'null'] },
    },
  },
};

/** Shapes one choice's output (a whole choice, or a streamed delta) for one of the two APIs. */
interface ChoiceFormat {
  choice(text: string, finish: FinishReason | null, stopReason: string | number | null): Record<string, unknown>;
  delta(
    text: string,
    finish: FinishReason | null,
    stopReason: string | number | null,
    first: boolean,
  ): Record<string, unknown>;
  /** The logprobs field for these tokens (called for the whole choice, or once per streamed delta). */
  logprobs(tokens: readonly number[], logprobs: readonly TokenLogprobs[]): unknown;
}

interface Flavor {
  object: string;
  chunkObject: string;
  /** A fresh formatter for choice `index`. */
  format(index: number, names: TokenTexts): ChoiceFormat;
}

/** The engine's 'abort' is never reported: a stop string (or the client) ended the choice. */
const reported = (finish: FinishReason | null) => (finish === 'abort' ? 'stop' : finish);

const completionFlavor: Flavor = {
  object: 'text_completion',
  chunkObject: 'text_completion',
  format(index, names) {
    const builder = new CompletionLogprobsBuilder(names);
    const choice = (text: string, finish: FinishReason | null, stopReason: string | number | null) => ({
      index,
      text,
      finish_reason: reported(finish),
      stop_reason: stopReason,
    });
    return {
      choice,
      delta: choice,
      logprobs: (tokens, logprobs) => builder.build(tokens, logprobs),
    };
  },
};

const chatFlavor: Flavor = {
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  format(index, names) {
    return {
      choice: (text, finish, stopReason) => ({
        index,
        message: { role: 'assistant', content: text },
        finish_reason: reported(finish),
        stop_reason: stopReason,
      }),
      delta: (text, finish, stopReason, first) => ({
        index,
        delta: first ? { role: 'assistant', content: text } : text ? { content: text } : {},
        finish_reason: reported(finish),
        stop_reason: stopReason,
      }),
      logprobs: (tokens, logprobs) => chatLogprobs(names, tokens, logprobs),
    };
  },
};

/** Top logprobs per token the request asks for (null: none), as each API spells it. */
function completionLogprobsOf(body: CompletionBody): number | null {
  return logprobsCount(body.logprobs, 'logprobs');
}

function chatLogprobsOf(body: ChatBody): number | null {
  const top = logprobsCount(body.top_logprobs, 'top_logprobs');
  if (!body.logprobs) {
    if (top !== null && top > 0) {
      throw createError(
        'REQUEST_INVALID',
        { message: "'top_logprobs' needs 'logprobs': true" },
        { param: 'top_logprobs' },
      );
    }
    return null;
  }
  return top ?? 0;
}

export function registerCompletionRoutes(app: FastifyInstance, ctx: ServerContext, metrics: Metrics) {
  const names = new TokenTexts(ctx.codec.tokenizer);
  app.post(
    '/v1/completions',
    { schema: completionSchema },
    async (req: FastifyRequest<{ Body: CompletionBody }>, reply) => {
      const body = req.body;
      const adapter = resolveModel(ctx, body.model);
      const request = samplingRequest(body, completionLogprobsOf(body), ctx.engine.info.vocabSize);
      const promptIds = typeof body.prompt === 'string' ? ctx.codec.encode(body.prompt) : body.prompt;
      return serve({ ctx, metrics, names, reply, body, request, adapter, promptIds, flavor: completionFlavor });
    },
  );

  app.post('/v1/chat/completions', { schema: chatSchema }, async (req: FastifyRequest<{ Body: ChatBody }>, reply) => {
    const body = req.body;
    const adapter = resolveModel(ctx, body.model);
    const request = samplingRequest(body, chatLogprobsOf(body), ctx.engine.info.vocabSize);
    const promptIds = ctx.codec.encodeChat(body.messages);
    return serve({ ctx, metrics, names, reply, body, request, adapter, promptIds, flavor: chatFlavor });
  });
}

interface Job {
  ctx: ServerContext;
  metrics: Metrics;
  names: TokenTexts;
  reply: FastifyReply;
  body: SamplingBody;
  request: SamplingRequest;
  adapter: string | null;
  promptIds: number[];
  flavor: Flavor;
}

async function serve(job: Job) {
  const { ctx } = job;
  if (ctx.lifecycle.draining) throw createError('SERVER_DRAINING', {});
  ctx.lifecycle.begin();
  try {
    return await respond(job);
  } finally {
    ctx.lifecycle.end();
  }
}

function checkPrompt(job: Job) {
  const { promptIds } = job;
  const vocab = job.ctx.engine.info.vocabSize;
  if (promptIds.length === 0)
    throw createError('REQUEST_INVALID', { message: 'the prompt is empty' }, { param: 'prompt' });
  if (promptIds.some((id) => id >= vocab)) {
    throw createError(
      'REQUEST_INVALID',
      { message: `token ids must be below the vocabulary size ${vocab}` },
      { param: 'prompt' },
    );
  }
  const maxTokens = job.request.params.maxTokens ?? 16;
  const maxLen = job.ctx.engine.info.maxModelLen;
  if (promptIds.length + maxTokens > maxLen) {
    throw createError(
      'REQUEST_INVALID',
      {
        message: `prompt (${promptIds.length} tokens) + max_tokens (${maxTokens}) exceeds the context length ${maxLen}`,
      },
      { param: 'max_tokens' },
    );
  }
}

/** The request's n choices, each generating and decoding on its own; `onDelta` sees every delta. */
function runChoices(job: Job, signal: AbortSignal, onDelta: (index: number, delta: ChoiceDelta) => void) {
  const { ctx, metrics, request, adapter, promptIds } = job;
  const started = performance.now();
  let firstToken = true;
  const choices = Array.from(
    { length: request.n },
    () =>
      new ChoiceDecoder(ctx.codec.tokenizer, {
        promptIds,
        stop: request.stop,
        stopTokenIds: request.params.stopTokenIds ?? [],
        includeStopStr: request.includeStopStr,
        minTokens: request.params.minTokens ?? 0,
      }),
  );
  // All n are submitted before the first await, so they join the same engine step.
  const runs = choices.map(async (choice, i) => {
    let reason = 'abort';
    try {
      for await (const e of ctx.engine.generate(promptIds, adapter, choiceParams(request, i), signal)) {
        if (firstToken) metrics.timeToFirstToken.observe((performance.now() - started) / 1000);
        firstToken = false;
        const delta = choice.push(e);
        if (delta.finishReason) reason = delta.finishReason;
        onDelta(i, delta);
        // Leaving the loop early (a stop string) aborts the engine sequence at once.
        if (choice.finished) break;
      }
    } finally {
      metrics.finished(adapter, promptIds.length, choice.completionTokens, reason);
    }
  });
  return { choices, done: Promise.all(runs) };
}

function usageOf(promptTokens: number, choices: ChoiceDecoder[]) {
  const completion = choices.reduce((n, c) => n + c.completionTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

async function respond(job: Job) {
  checkPrompt(job);
  const { reply, body, flavor, request, promptIds } = job;
  const id = `${flavor.object === 'text_completion' ? 'cmpl' : 'chatcmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const abort = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  const formats = Array.from({ length: request.n }, (_, i) => flavor.format(i, job.names));
  const wantLogprobs = request.params.logprobs !== undefined;

  if (!body.stream) {
    const outputs = formats.map(() => ({
      text: '',
      tokens: [] as number[],
      logprobs: [] as TokenLogprobs[],
      finish: null as FinishReason | null,
      stopReason: null as string | number | null,
    }));
    const { choices, done } = runChoices(job, abort.signal, (i, d) => {
      const out = outputs[i];
      out.text += d.text;
      out.tokens.push(...d.tokens);
      out.logprobs.push(...d.logprobs);
      if (d.finishReason) {
        out.finish = d.finishReason;
        out.stopReason = d.stopReason;
      }
    });
    try {
      await done;
    } catch (err) {
      abort.abort();
      throw err;
    }
    return {
      id,
      object: flavor.object,
      created,
      model: body.model,
      choices: outputs.map((out, i) => ({
        ...formats[i].choice(out.text, out.finish, out.stopReason),
        logprobs: wantLogprobs ? formats[i].logprobs(out.tokens, out.logprobs) : null,
      })),
      usage: usageOf(promptIds.length, choices),
    };
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
  const chunk = (choices: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
    id,
    object: flavor.chunkObject,
    created,
    model: body.model,
    choices,
    ...extra,
  });
  const first = formats.map(() => true);
  const { choices, done } = runChoices(job, abort.signal, (i, d) => {
    // With logprobs, every token's entry goes out at once, even when its text is still held back.
    const carriesLogprobs = wantLogprobs && d.tokens.length > 0;
    if (!(d.text || d.finishReason || first[i] || carriesLogprobs)) return;
    const format = formats[i];
    send(
      chunk([
        {
          ...format.delta(d.text, d.finishReason, d.stopReason, first[i]),
          logprobs: carriesLogprobs ? format.logprobs(d.tokens, d.logprobs) : null,
        },
      ]),
    );
    first[i] = false;
  });
  try {
    await done;
    if (body.stream_options?.include_usage) send(chunk([], { usage: usageOf(promptIds.length, choices) }));
    res.write('data: [DONE]\n\n');
  } catch (err) {
    abort.abort();
    send({ error: { message: (err as Error).message, type: 'server_error', param: null, code: 'INTERNAL_ERROR' } });
  } finally {
    res.end();
  }
  return reply;
}
