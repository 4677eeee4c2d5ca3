/**
 * POST /v1/completions and /v1/chat/completions, streaming (SSE) or not, with n choices (one engine sequence
 * each, in the same batches), stop strings and logprobs. A client that goes away has its sequences aborted,
 * which frees their KV blocks and adapter pins in the engine's next step; so does a stop string's match.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { createError, isLoraplexError, type LoraplexError } from '../observability/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { ChoiceDecoder, type ChoiceDelta } from './choice-decoder.ts';
import type { ServerContext } from './context.ts';
import { toLoraplexError } from './error-mapping.ts';
import { CompletionLogprobsBuilder, chatLogprobs, TokenTexts } from './logprobs.ts';
import { PROMPT_BYTES_PER_TOKEN, PromptEncoder } from './prompt-input.ts';
import { refuseUnsupported } from './request-fields.ts';
import { resolveModel } from './resolve-model.ts';
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

const completionFields = new Set(Object.keys(completionSchema.body.properties));
const chatFields = new Set(Object.keys(chatSchema.body.properties));

export function registerCompletionRoutes(app: FastifyInstance, ctx: ServerContext, metrics: Metrics) {
  const names = new TokenTexts(ctx.codec.tokenizer);
  const prompts = new PromptEncoder(
    ctx.codec,
    () => ctx.limits?.maxPromptBytes ?? PROMPT_BYTES_PER_TOKEN * ctx.engine.info.maxModelLen,
  );
  app.addHook('onClose', () => prompts.close());
  // One listener per running request: many are expected, none leak (each is removed when its request ends).
  setMaxListeners(0, ctx.lifecycle.cancelled);

  app.post(
    '/v1/completions',
    { schema: completionSchema },
    async (req: FastifyRequest<{ Body: CompletionBody }>, reply) => {
      const body = req.body;
      refuseUnsupported(body as unknown as Record<string, unknown>, completionFields);
      const adapter = resolveModel(ctx, body.model);
      const vocabSize = ctx.engine.info.vocabSize;
      const request = samplingRequest(body, completionLogprobsOf(body), vocabSize);
      const promptIds = await prompts.completion(body.prompt, vocabSize);
      return serve({ ctx, metrics, names, reply, body, request, adapter, promptIds, flavor: completionFlavor });
    },
  );

  app.post('/v1/chat/completions', { schema: chatSchema }, async (req: FastifyRequest<{ Body: ChatBody }>, reply) => {
    const body = req.body;
    refuseUnsupported(body as unknown as Record<string, unknown>, chatFields);
    const adapter = resolveModel(ctx, body.model);
    const request = samplingRequest(body, chatLogprobsOf(body), ctx.engine.info.vocabSize);
    const promptIds = await prompts.chat(body.messages);
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
  const refusal = ctx.lifecycle.refusal();
  if (refusal) throw refusal;
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
  const { ctx, request, adapter, promptIds } = job;
  const trace = job.reply.request.trace;
  trace.generating(adapter, promptIds.length, request.n);
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
        trace.token(i);
        const delta = choice.push(e);
        if (delta.finishReason) reason = delta.finishReason;
        onDelta(i, delta);
        // Leaving the loop early (a stop string) aborts the engine sequence at once.
        if (choice.finished) break;
      }
    } finally {
      trace.choiceFinished(i, adapter, choice.completionTokens, reason);
    }
  });
  return { choices, done: Promise.all(runs) };
}

function usageOf(promptTokens: number, choices: ChoiceDecoder[]) {
  const completion = choices.reduce((n, c) => n + c.completionTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

/**
 * The request's own abort: the client going away, or the server ending every running request (the drain's
 * deadline, an engine fault: then `cancelReason` says why).
 */
function requestAbort(job: Job) {
  const abort = new AbortController();
  setMaxListeners(job.request.n + 4, abort.signal); // one listener per choice, plus ours
  const res = job.reply.raw;
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.on('close', onClose);
  const cancelled = job.ctx.lifecycle.cancelled;
  const onCancel = () => abort.abort(cancelled.reason);
  if (cancelled.aborted) onCancel();
  else cancelled.addEventListener('abort', onCancel, { once: true });
  return {
    signal: abort.signal,
    abort: () => abort.abort(),
    /** Why the server ended the request (null: it did not). */
    cancelReason: (): LoraplexError | null =>
      abort.signal.aborted && isLoraplexError(abort.signal.reason) ? abort.signal.reason : null,
    dispose() {
      res.off('close', onClose);
      cancelled.removeEventListener('abort', onCancel);
    },
  };
}

async function respond(job: Job) {
  checkPrompt(job);
  const abort = requestAbort(job);
  try {
    return await (job.body.stream ? respondStreaming(job, abort) : respondWhole(job, abort));
  } finally {
    abort.dispose();
  }
}

type RequestAbort = ReturnType<typeof requestAbort>;

const responseId = (flavor: Flavor) => `${flavor.object === 'text_completion' ? 'cmpl' : 'chatcmpl'}-${randomUUID()}`;

async function respondWhole(job: Job, abort: RequestAbort) {
  const { body, flavor, request, promptIds } = job;
  const id = responseId(flavor);
  const created = Math.floor(Date.now() / 1000);
  const formats = Array.from({ length: request.n }, (_, i) => flavor.format(i, job.names));
  const wantLogprobs = request.params.logprobs !== undefined;
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
  const cancelled = abort.cancelReason();
  if (cancelled) throw cancelled;
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

/**
 * SSE. The status and headers go out only once every choice is admitted — its first event came back from
 * the engine, so validation, the adapter (its load included), the waiting queue and the KV budget have all
 * said yes — so a refusal keeps its status (400/404/429/503, Retry-After). Events produced before then are
 * held and sent right after the headers. An error after the stream began ends it with an OpenAI-style error
 * event and `[DONE]`.
 */
async function respondStreaming(job: Job, abort: RequestAbort) {
  const { reply, body, flavor, request, promptIds } = job;
  const id = responseId(flavor);
  const created = Math.floor(Date.now() / 1000);
  const formats = Array.from({ length: request.n }, (_, i) => flavor.format(i, job.names));
  const wantLogprobs = request.params.logprobs !== undefined;
  const res = reply.raw;
  const held: string[] = [];
  let open = false;
  const send = (payload: unknown) => {
    const event = `data: ${JSON.stringify(payload)}\n\n`;
    if (open) res.write(event);
    else held.push(event);
  };
  const chunk = (choices: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
    id,
    object: flavor.chunkObject,
    created,
    model: body.model,
    choices,
    ...extra,
  });
  const first = formats.map(() => true);
  let unadmitted = request.n;
  let admitted!: () => void;
  const admission = new Promise<void>((resolve) => {
    admitted = resolve;
  });
  const { choices, done } = runChoices(job, abort.signal, (i, d) => {
    if (first[i] && --unadmitted === 0) admitted();
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
  // Before the headers: a refusal is thrown, and the error handler answers with its status.
  try {
    await Promise.race([admission, done]);
  } catch (err) {
    abort.abort();
    throw err;
  }
  const refused = abort.cancelReason();
  if (refused && unadmitted > 0) throw refused;
  reply.hijack();
  if (abort.signal.aborted && unadmitted > 0) {
    res.end(); // the client left before anything was sent
    return reply;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  open = true;
  for (const event of held.splice(0)) res.write(event);
  try {
    await done;
    const cancelled = abort.cancelReason();
    if (cancelled) throw cancelled;
    if (body.stream_options?.include_usage) send(chunk([], { usage: usageOf(promptIds.length, choices) }));
  } catch (err) {
    abort.abort();
    send(toLoraplexError(err, { bodyLimit: 0 }).toOpenAIError());
  } finally {
    res.end('data: [DONE]\n\n');
  }
  return reply;
}
