/**
 * The OpenAI-compatible HTTP API (fastify). Parses and validates requests, resolves `model` to the base or an
 * adapter, tokenizes, and streams the engine worker's tokens back; it never computes.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { AsyncEngine } from '../engine/async-engine.ts';
import { createError, isLoraplexError, type LoraplexError } from '../observability/errors.ts';
import { Metrics } from '../observability/metrics.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';
import { ADMIN_ROUTES, type AdminConfig, registerAdminRoutes } from './admin.ts';
import { registerApiKey } from './auth.ts';
import { registerCompletionRoutes } from './completions.ts';
import { registerHealthRoutes } from './health.ts';
import type { Lifecycle } from './lifecycle.ts';
import { registerModelRoutes } from './models.ts';

export interface ServerContext {
  /** Set once the engine is up: until then (lifecycle.ready false) every route but liveness and metrics answers 503. */
  engine: AsyncEngine;
  codec: TextCodec;
  /** The name clients use for the base model. */
  baseModel: string;
  startedAt: number;
  /** When set, /v1/* requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The runtime adapter endpoints, when enabled. */
  admin?: AdminConfig;
  /** Draining (after SIGTERM): readiness fails and new requests get 503 while running ones finish. */
  lifecycle: Lifecycle;
}

/** Routes that answer whatever the engine's state: they report it (health) or observe it (metrics). */
const PROBE_ROUTES = new Set(['/health', '/v1/health/live', '/v1/health/ready', '/metrics']);

export function buildApp(ctx: ServerContext): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  const metrics = new Metrics(ctx.baseModel, () => (ctx.lifecycle.ready ? ctx.engine.stats : null));
  // Loading or faulted: every route answers 503, but the probes (which say so themselves) and metrics.
  app.addHook('onRequest', async (req, reply) => {
    const { ready, fault } = ctx.lifecycle;
    if ((ready && !fault) || PROBE_ROUTES.has(req.routeOptions.url ?? '')) return;
    const e = ctx.lifecycle.refusal()!;
    await reply.status(e.status).header('retry-after', '5').send(e.toOpenAIError());
  });
  ctx.lifecycle.whenReady(() => {
    ctx.engine.onAdapterLoad = (_name, seconds, ok) => metrics.adapterLoaded(seconds, ok);
  });
  registerApiKey(app, ctx.apiKey, ctx.admin?.adminKey ? ADMIN_ROUTES : []);
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
    if (e.code === 'SERVER_OVERLOADED') void reply.header('retry-after', '1');
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

  registerHealthRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerCompletionRoutes(app, ctx, metrics);
  if (ctx.admin) registerAdminRoutes(app, ctx, ctx.admin);
  return app;
}

/** `model` → null for the base, the adapter's name otherwise; never a silent fallback to the base. */
export function resolveModel(ctx: ServerContext, model: string): string | null {
  if (model === ctx.baseModel) return null;
  const adapters = ctx.engine.adapters;
  if (adapters.some((a) => a.name === model)) return model;
  const names = adapters.map((a) => a.name);
  const available = [ctx.baseModel, ...names.slice(0, 20)].join(', ') + (names.length > 20 ? ', …' : '');
  throw createError('MODEL_NOT_FOUND', { name: model, available }, { param: 'model' });
}
