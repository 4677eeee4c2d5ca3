/**
 * POST /v1/completions and /v1/chat/completions: the request's schema, its fields checked, `model` resolved
 * and the prompt (or prompts) tokenized here; generation.ts runs it and answers.
 */
import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createError } from '../observability/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { messageSchema, type RequestMessage, templateMessages } from './chat-messages.ts';
import { chatFlavor, completionFlavor } from './choice-format.ts';
import type { ServerContext } from './context.ts';
import { serve } from './generation.ts';
import { type LoraEntry, loraParts, loraSchema } from './lora-field.ts';
import { refuseUnsupported } from './request-fields.ts';
import { requestTokenizers } from './request-tokenizers.ts';
import { resolveModel } from './resolve-model.ts';
import {
  logprobsCount,
  MAX_CHOICES,
  type SamplingBody,
  samplingProperties,
  samplingRequest,
} from './sampling-request.ts';

/** Most prompts in one completions request (each runs n choices, up to MAX_CHOICES sequences in all). */
export const MAX_PROMPTS = MAX_CHOICES;

type PromptField = string | number[] | string[] | number[][];

interface CompletionBody extends SamplingBody {
  /** A text, token ids, or a list of either: one choice (n) per prompt. */
  prompt: PromptField;
  /** Top logprobs per token (0: only the sampled token's). */
  logprobs?: number | null;
  /** Each choice's text starts with its prompt's. */
  echo?: boolean | null;
  /** vLLM's: logprobs of the prompt's tokens, with the top k at each position. */
  prompt_logprobs?: number | null;
  /** Candidates per prompt; the n with the highest cumulative logprob are returned (not with stream). */
  best_of?: number | null;
  lora?: LoraEntry[] | null;
}

interface ChatBody extends SamplingBody {
  messages: RequestMessage[];
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  /** vLLM's: logprobs of the prompt's tokens, with the top k at each position (top level of the response). */
  prompt_logprobs?: number | null;
  lora?: LoraEntry[] | null;
}

const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 };

const completionSchema = {
  body: {
    type: 'object',
    required: ['model', 'prompt'],
    properties: {
      ...samplingProperties,
      prompt: {
        anyOf: [
          { type: 'string' },
          tokenIds,
          { type: 'array', items: { type: 'string' }, minItems: 1 },
          { type: 'array', items: tokenIds, minItems: 1 },
        ],
      },
      logprobs: { type: ['integer', 'null'] },
      echo: { type: ['boolean', 'null'] },
      prompt_logprobs: { type: ['integer', 'null'] },
      best_of: { type: ['integer', 'null'] },
      lora: loraSchema,
    },
  },
};

const chatSchema = {
  body: {
    type: 'object',
    required: ['model', 'messages'],
    properties: {
      ...samplingProperties,
      messages: { type: 'array', minItems: 1, items: messageSchema },
      logprobs: { type: ['boolean', 'null'] },
      top_logprobs: { type: ['integer', 'null'] },
      prompt_logprobs: { type: ['integer', 'null'] },
      lora: loraSchema,
    },
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
  // The base's tokenizer, or the one the request's adapter ships (request-tokenizers.ts).
  const tokenizers = requestTokenizers(ctx);
  app.addHook('onClose', () => tokenizers.close());
  // One listener per running request: many are expected, none leak (each is removed when its request ends).
  setMaxListeners(0, ctx.lifecycle.cancelled);

  app.post(
    '/v1/completions',
    { schema: completionSchema },
    async (req: FastifyRequest<{ Body: CompletionBody }>, reply) => {
      const body = req.body;
      refuseUnsupported(body as unknown as Record<string, unknown>, completionFields);
      const adapter = resolveModel(ctx, body.model);
      const lora = loraParts(ctx, body.lora, adapter);
      const vocabSize = ctx.engine.info.vocabSize;
      const request = samplingRequest(body, completionLogprobsOf(body), vocabSize);
      const shown = logprobsCount(body.prompt_logprobs, 'prompt_logprobs');
      const echoLogprobs = Boolean(body.echo) && request.params.logprobs !== undefined;
      const k = Math.max(shown ?? -1, echoLogprobs ? (request.params.logprobs ?? 0) : -1);
      if (k >= 0) request.params.promptLogprobs = k;
      const bestOf = body.best_of ?? request.n;
      if (bestOf < request.n || bestOf > MAX_CHOICES) {
        throw createError(
          'REQUEST_INVALID',
          { message: `'best_of' must be between n (${request.n}) and ${MAX_CHOICES} (got ${bestOf})` },
          { param: 'best_of' },
        );
      }
      if (bestOf > request.n && body.stream) {
        throw createError(
          'REQUEST_INVALID',
          { message: "'best_of' above n cannot be streamed: the best are known only at the end" },
          { param: 'best_of' },
        );
      }
      const hideLogprobs = bestOf > request.n && request.params.logprobs === undefined;
      if (hideLogprobs) request.params.logprobs = 0;
      const texts = promptList(body.prompt, bestOf);
      const tk = await tokenizers.forModel(adapter);
      const promptIds: number[][] = [];
      for (const [i, prompt] of texts.entries()) {
        promptIds.push(await tk.prompts.completion(prompt, vocabSize, texts.length > 1 ? `prompt[${i}]` : 'prompt'));
      }
      return serve({
        ctx,
        metrics,
        names: tk.names,
        codec: tk.codec,
        stopIds: tk.stopIds,
        reply,
        body,
        request,
        adapter,
        lora,
        prompts: promptIds,
        echo: body.echo ? texts.map((t) => (typeof t === 'string' ? t : tk.codec.decode(t))) : undefined,
        echoLogprobs,
        showPromptLogprobs: shown !== null,
        bestOf,
        hideLogprobs,
        flavor: completionFlavor,
      });
    },
  );

  app.post('/v1/chat/completions', { schema: chatSchema }, async (req: FastifyRequest<{ Body: ChatBody }>, reply) => {
    const body = req.body;
    refuseUnsupported(body as unknown as Record<string, unknown>, chatFields);
    const adapter = resolveModel(ctx, body.model);
    const lora = loraParts(ctx, body.lora, adapter);
    const request = samplingRequest(body, chatLogprobsOf(body), ctx.engine.info.vocabSize);
    const shown = logprobsCount(body.prompt_logprobs, 'prompt_logprobs');
    if (shown !== null) request.params.promptLogprobs = shown;
    const tk = await tokenizers.forModel(adapter);
    const promptIds = await tk.prompts.chat(templateMessages(body.messages));
    const text = { names: tk.names, codec: tk.codec, stopIds: tk.stopIds };
    const job = { ctx, metrics, ...text, reply, body, request, adapter, lora, prompts: [promptIds] };
    return serve({ ...job, showPromptLogprobs: shown !== null, flavor: chatFlavor });
  });
}

/** A completions `prompt` → its prompts: a text or token ids is one prompt; a list of either, several. */
function promptList(prompt: PromptField, n: number): (string | number[])[] {
  const list = typeof prompt === 'string' || typeof prompt[0] === 'number' ? [prompt as string | number[]] : prompt;
  const prompts = list as (string | number[])[];
  if (prompts.length > MAX_PROMPTS || prompts.length * n > MAX_CHOICES) {
    throw createError(
      'REQUEST_INVALID',
      {
        message: `a request runs at most ${MAX_CHOICES} sequences (prompts × n); this one asks for ${prompts.length} × ${n}`,
      },
      { param: 'prompt' },
    );
  }
  return prompts;
}
