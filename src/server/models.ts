/** GET /v1/models: the base and every adapter, with what a router or an operator wants to know of each. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.ts';

export function registerModelRoutes(app: FastifyInstance, ctx: ServerContext) {
  app.get('/v1/models', async () => {
    const created = Math.floor(ctx.startedAt / 1000);
    // As vLLM lists it: the longest prompt + output any request may reach, the same for every model.
    const maxModelLen = ctx.engine.info.maxModelLen;
    return {
      object: 'list',
      data: [
        {
          id: ctx.baseModel,
          object: 'model',
          created,
          owned_by: 'loraplex',
          parent: null,
          root: ctx.baseModel,
          max_model_len: maxModelLen,
        },
        ...ctx.engine.adapters.map((a) => ({
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
          rank: a.rank,
          target_modules: a.targets,
          ...(a.error ? { error: a.error } : {}),
          warnings: a.warnings,
        })),
      ],
    };
  });
}
