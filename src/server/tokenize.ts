/**
 * vLLM's POST /tokenize and /detokenize: a prompt (or chat messages through the template) → token ids, as the
 * completion routes would tokenize it (same size limit, same thread for large text); ids → text.
 *
 *   POST /tokenize   {prompt, add_special_tokens?, return_token_strs?}
 *                    {messages, add_generation_prompt?, add_special_tokens?, return_token_strs?}
 *                 →  {count, max_model_len, tokens, token_strs?}
 *   POST /detokenize {tokens} → {prompt}
 *
 * `model` (the base or an adapter; default the base) picks the tokenizer: an adapter's own when it ships one.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createError } from '../observability/errors.ts';
import { messageSchema, type RequestMessage, templateMessages } from './chat-messages.ts';
import type { ServerContext } from './context.ts';
import { refuseUnsupported } from './request-fields.ts';
import { requestTokenizers } from './request-tokenizers.ts';
import { resolveModel } from './resolve-model.ts';

interface TokenizeBody {
  model?: string | null;
  prompt?: string;
  messages?: RequestMessage[];
  add_special_tokens?: boolean | null;
  add_generation_prompt?: boolean | null;
  return_token_strs?: boolean | null;
}

const tokenizeSchema = {
  body: {
    type: 'object',
    properties: {
      model: { type: ['string', 'null'] },
      prompt: { type: 'string' },
      messages: { type: 'array', minItems: 1, items: messageSchema },
      add_special_tokens: { type: ['boolean', 'null'] },
      add_generation_prompt: { type: ['boolean', 'null'] },
      return_token_strs: { type: ['boolean', 'null'] },
    },
  },
};

const tokenizeFields = new Set(Object.keys(tokenizeSchema.body.properties));

const detokenizeSchema = {
  body: {
    type: 'object',
    required: ['tokens'],
    properties: {
      model: { type: ['string', 'null'] },
      tokens: { type: 'array', items: { type: 'integer', minimum: 0 } },
    },
  },
};

export function registerTokenizeRoutes(app: FastifyInstance, ctx: ServerContext) {
  // `model` picks the tokenizer: an adapter that ships one is tokenized with it (request-tokenizers.ts).
  const tokenizers = requestTokenizers(ctx);
  app.addHook('onClose', () => tokenizers.close());

  app.post('/tokenize', { schema: tokenizeSchema }, async (req: FastifyRequest<{ Body: TokenizeBody }>) => {
    const body = req.body;
    refuseUnsupported(body as unknown as Record<string, unknown>, tokenizeFields);
    // A name that is neither the base nor an adapter is a 404, as on the other routes.
    const adapter = body.model ? resolveModel(ctx, body.model) : null;
    if ((body.prompt === undefined) === (body.messages === undefined)) {
      throw createError('REQUEST_INVALID', { message: "give either 'prompt' or 'messages'" }, { param: 'prompt' });
    }
    const { prompts, names } = await tokenizers.forModel(adapter);
    const tokens =
      body.prompt !== undefined
        ? await prompts.completion(body.prompt, ctx.engine.info.vocabSize, 'prompt', {
            addSpecialTokens: body.add_special_tokens ?? true,
          })
        : await prompts.chat(templateMessages(body.messages ?? []), {
            addGenerationPrompt: body.add_generation_prompt ?? true,
            addSpecialTokens: body.add_special_tokens ?? false,
          });
    return {
      count: tokens.length,
      max_model_len: ctx.engine.info.maxModelLen,
      tokens,
      ...(body.return_token_strs ? { token_strs: tokens.map((id) => names.of(id)) } : {}),
    };
  });

  app.post('/detokenize', { schema: detokenizeSchema }, async (req: FastifyRequest<{ Body: DetokenizeBody }>) => {
    const { model, tokens } = req.body;
    const { codec } = await tokenizers.forModel(model ? resolveModel(ctx, model) : null);
    const vocab = ctx.engine.info.vocabSize;
    const bad = tokens.findIndex((id) => id >= vocab);
    if (bad >= 0) {
      throw createError(
        'REQUEST_INVALID',
        { message: `token ids must be below the vocabulary size ${vocab}; tokens[${bad}] is ${tokens[bad]}` },
        { param: 'tokens' },
      );
    }
    return { prompt: codec.decode(tokens) };
  });
}

interface DetokenizeBody {
  model?: string | null;
  tokens: number[];
}
