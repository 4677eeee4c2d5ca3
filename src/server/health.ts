/** Liveness and readiness probes (NIM's /v1/health/live|ready, vLLM's /health); always open, no key. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from './context.ts';

export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext) {
  const { lifecycle } = ctx;
  const live = async (_req: unknown, reply: FastifyReply) => {
    if (lifecycle.fault) reply.status(503);
    return lifecycle.fault ? { status: 'failed', reason: lifecycle.fault.message } : { status: 'ok' };
  };
  const ready = async (_req: unknown, reply: FastifyReply) => {
    const refusal = lifecycle.refusal();
    if (refusal) reply.status(503);
    const status = lifecycle.fault ? 'failed' : !lifecycle.ready ? 'loading' : lifecycle.draining ? 'draining' : 'ok';
    return refusal ? { status, reason: refusal.message } : { status };
  };
  app.get('/health', ready);
  app.get('/v1/health/live', live);
  app.get('/v1/health/ready', ready);
}
