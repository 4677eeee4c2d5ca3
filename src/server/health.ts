/** Liveness and readiness probes (NIM's /v1/health/live|ready, vLLM's /health); always open, no key. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './app.ts';

export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext) {
  const live = async () => ({ status: 'ok' });
  const ready = async (_req: unknown, reply: { status(code: number): unknown }) => {
    if (ctx.lifecycle.draining) reply.status(503);
    return { status: ctx.lifecycle.draining ? 'draining' : 'ok' };
  };
  app.get('/health', ready);
  app.get('/v1/health/live', live);
  app.get('/v1/health/ready', ready);
}
