/**
 * The OpenAI-compatible HTTP API (fastify). Parses and validates requests, resolves `model` to the base or an
 * adapter, tokenizes, and streams the engine worker's tokens back; it never computes.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { CLIENT_CLOSED_STATUS, Metrics } from '../observability/metrics.ts';
import { errorCodeOf, RequestTrace } from '../observability/request-trace.ts';
import { registerAdminRoutes } from './admin.ts';
import { OPEN_ROUTES, registerAuth } from './auth.ts';
import { registerCompletionRoutes } from './completions.ts';
import type { ServerContext } from './context.ts';
import { registerCors } from './cors.ts';
import { toLoraplexError, truncated } from './error-mapping.ts';
import { registerHealthRoutes } from './health.ts';
import { registerModelRoutes } from './models.ts';
import { registerTokenizeRoutes } from './tokenize.ts';
import { registerUiRoutes } from './ui/routes.ts';
import { registerVersionRoute } from './version.ts';

export type { ServerContext } from './context.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's metrics and log line (observability/request-trace.ts). */
    trace: RequestTrace;
  }
}

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Reads and drops a request's body until it ends, `maxBytes` have come, or `timeoutMs` has passed. */
function discardBody(body: NodeJS.ReadableStream, maxBytes: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      body.off('data', onData);
      body.off('end', done);
      body.off('error', done);
      body.off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) done();
    };
    const timer = setTimeout(done, timeoutMs);
    body.on('data', onData);
    body.on('end', done);
    body.on('error', done);
    body.on('close', done);
    body.resume();
  });
}

export function buildApp(ctx: ServerContext): FastifyInstance {
  const bodyLimit = ctx.limits?.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const app = Fastify({
    logger: false,
    bodyLimit,
    // Types are checked, never coerced: "10" is not 10, and [9707] is not the text "9707".
    ajv: { customOptions: { coerceTypes: false } },
  });
  const metrics = new Metrics(ctx.baseModel, () => (ctx.lifecycle.ready ? ctx.engine.stats : null));
  // The first hook, so refusals (auth, 503) count too; the raw 'close' also sees streamed (hijacked) replies.
  app.decorateRequest('trace', null as unknown as RequestTrace);
  app.addHook('onRequest', async (req, reply) => {
    const origin = { id: req.id, route: req.routeOptions.url ?? null, method: req.method };
    const trace = new RequestTrace(metrics, ctx.requestLog ?? null, origin);
    req.trace = trace;
    const res = reply.raw;
    res.once('close', () => trace.end(res.writableFinished ? res.statusCode : CLIENT_CLOSED_STATUS));
  });
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode >= 400) req.trace.failed(errorCodeOf(payload));
    return payload;
  });
  registerCors(app, ctx.allowedOrigins ?? []);
  registerAuth(app, { apiKey: ctx.apiKey, adminKey: ctx.admin?.adminKey });
  // Loading or faulted: every route answers 503, but the probes (which say so themselves) and metrics.
  app.addHook('onRequest', async (req, reply) => {
    const { ready, fault } = ctx.lifecycle;
    if ((ready && !fault) || OPEN_ROUTES.has(req.routeOptions.url ?? '')) return;
    const e = ctx.lifecycle.refusal()!;
    await reply.status(e.status).header('retry-after', '5').send(e.toOpenAIError());
  });
  ctx.lifecycle.whenReady(() => {
    ctx.engine.onAdapterLoad = (_name, seconds, ok) => metrics.adapterLoaded(seconds, ok);
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // JSON only: a text/plain or form body is a 415, not a string the schema then calls "not an object".
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  const noRoute = (req: FastifyRequest, reply: FastifyReply) =>
    reply.status(404).send({
      error: {
        message: `no route ${truncated(req.method, 16)} ${truncated(req.url)}`,
        type: 'not_found_error',
        param: null,
        code: 'ROUTE_NOT_FOUND',
      },
    });
  app.setErrorHandler((error, req, reply) => {
    // A body that fails to parse on a path with no route: the missing route is the answer.
    if (req.is404) return noRoute(req, reply);
    const e = toLoraplexError(error, { contentType: req.headers['content-type'], bodyLimit });
    if (e.code === 'SERVER_OVERLOADED') void reply.header('retry-after', '1');
    else if (e.status === 503) void reply.header('retry-after', '5'); // draining or failed: another replica, or later
    const answer = () => void reply.status(e.status).send(e.toOpenAIError());
    // A client that writes its whole body before reading would see a broken pipe, not the 413: read and drop
    // the rest first (bounded in bytes and time, as nginx's lingering close), then answer and close.
    if (e.code === 'REQUEST_TOO_LARGE') return discardBody(req.raw, bodyLimit * 4, 10_000).then(answer);
    answer();
  });
  app.setNotFoundHandler(noRoute);

  registerHealthRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerTokenizeRoutes(app, ctx);
  registerVersionRoute(app);
  registerCompletionRoutes(app, ctx, metrics);
  if (ctx.admin) registerAdminRoutes(app, ctx, ctx.admin);
  if (ctx.ui) registerUiRoutes(app, ctx);
  return app;
}
