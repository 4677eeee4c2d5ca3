/**
 * GET /v1/models and /v1/models/{id}: the base and every adapter, with what a router or an operator wants to
 * know of each (max_model_len as vLLM lists it: the longest prompt + output any request may reach).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createError } from '../observability/errors.ts';
import type { ServerContext } from './context.ts';
import { truncated } from './error-mapping.ts';

function modelList(ctx: ServerContext) {
  const created = Math.floor(ctx.startedAt / 1000);
  const maxModelLen = ctx.engine.info.maxModelLen;
  return [
    {
      id: ctx.baseModel,
      object: 'model',
      created,
      owned_by: 'loraplex',
      parent: null,
      root: ctx.baseModel,
      max_model_len: maxModelLen,
    },
    // A store folder named like the base is not served (the name means the base): it is not listed either.
    ...ctx.engine.adapters
      .filter((a) => a.name !== ctx.baseModel)
      .map((a) => ({
        id: a.name,
        object: 'model',
        created,
        owned_by: 'loraplex',
        parent: ctx.baseModel,
        root: ctx.baseModel,
        max_model_len: maxModelLen,
        // loraplex's own fields: what a router or an operator wants to know about each adapter.
        version: a.version,
        source: a.origin,
        cache_tier: a.tier,
        pinned: a.pinned,
        rank: a.rank,
        target_modules: a.targets,
        ...(a.error ? { error: a.error } : {}),
        warnings: a.warnings,
      })),
  ];
}

export function registerModelRoutes(app: FastifyInstance, ctx: ServerContext) {
  app.get('/v1/models', async () => ({ object: 'list', data: modelList(ctx) }));

  app.get('/v1/models/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const models = modelList(ctx);
    const model = models.find((m) => m.id === req.params.id);
    if (model) return model;
    const available =
      models
        .slice(0, 21)
        .map((m) => m.id)
        .join(', ') + (models.length > 21 ? ', …' : '');
    throw createError('MODEL_NOT_FOUND', { name: truncated(req.params.id), available }, { param: 'model' });
  });
}
