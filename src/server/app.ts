/**
 * The OpenAI-compatible HTTP API (fastify). Parses and validates requests, resolves `model` to the base or an
 * adapter, tokenizes, and streams the engine worker's tokens back; it never computes.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { AsyncEngine } from '../engine/async-engine.ts';
import { createError, isLoraplexError, type LoraplexError } from '../observability/errors.ts';
import { Metrics } from '../observability/metrics.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';
import { registerApiKey } from './auth.ts';
import { registerCompletionRoutes } from './completions.ts';

export interface ServerContext {
  engine: AsyncEngine;
  codec: TextCodec;
  /** The name clients use for the base model. */
  baseModel: string;
  adapters: string[];
  startedAt: number;
  /** When set, /v1/* requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Draining (after SIGTERM): readiness fails and new requests get 503 while running ones finish. */
  lifecycle: Lifecycle;
}

export class Lifecycle {
  draining = false;
  inFlight = 0;
  private idle: (() => void)[] = [];

  begin() {
    this.inFlight++;
  }

  end() {
    this.inFlight--;
    if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Stops taking requests; resolves when the running ones are done or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle.push(resolve);
      setTimeout(resolve, timeoutMs).unref();
    });
  }
}

export function buildApp(ctx: ServerContext): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  const metrics = new Metrics(ctx.baseModel, () => ctx.engine.stats);
  registerApiKey(app, ctx.apiKey);
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.setErrorHandler((error, _req, reply) => {
    const err = error as Error & { validation?: unknown };
    const e: LoraplexError = isLoraplexError(err)
      ? err
      : err.validation || err instanceof RangeError
        ? createError('REQUEST_INVALID', { message: err.message })
        : createError('INTERNAL_ERROR', { message: err.message });
    void reply.status(e.status).send(e.toOpenAIError());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: {
        message: `no route ${req.method} ${req.url}`,
        type: 'not_found_error',
        param: null,
        code: 'ROUTE_NOT_FOUND',
      },
    });
  });

  const live = async () => ({ status: 'ok' });
  const ready = async (_req: unknown, reply: { status(code: number): unknown }) => {
    if (ctx.lifecycle.draining) reply.status(503);
    return { status: ctx.lifecycle.draining ? 'draining' : 'ok' };
  };
  app.get('/health', ready);
  app.get('/v1/health/live', live);
  app.get('/v1/health/ready', ready);

  app.get('/v1/models', async () => {
    const created = Math.floor(ctx.startedAt / 1000);
    return {
      object: 'list',
      data: [
        { id: ctx.baseModel, object: 'model', created, owned_by: 'loraplex', parent: null, root: ctx.baseModel },
        ...ctx.adapters.map((name) => ({
          id: name,
          object: 'model',
          created,
          owned_by: 'loraplex',
          parent: ctx.baseModel,
          root: ctx.baseModel,
        })),
      ],
    };
  });

  registerCompletionRoutes(app, ctx, metrics);
  return app;
}

/** `model` → null for the base, the adapter's name otherwise; never a silent fallback to the base. */
export function resolveModel(ctx: ServerContext, model: string): string | null {
  if (model === ctx.baseModel) return null;
  if (ctx.adapters.includes(model)) return model;
  throw createError(
    'MODEL_NOT_FOUND',
    { name: model, available: [ctx.baseModel, ...ctx.adapters].join(', ') },
    { param: 'model' },
  );
}
