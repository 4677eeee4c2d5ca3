/**
 * CORS for browsers calling the API from other origins (--allowed-origins; off by default: no header is ever
 * sent). An allowed origin gets Access-Control-Allow-Origin on every answer (errors and SSE streams included:
 * the header is set on the raw response, which the hijacked streams write too) and its preflights get a 204
 * before any key check or 503 — a preflight never carries the key.
 */
import type { FastifyInstance } from 'fastify';

const PREFLIGHT_MAX_AGE_S = 600;

export function registerCors(app: FastifyInstance, allowedOrigins: readonly string[]) {
  if (allowedOrigins.length === 0) return;
  const anyOrigin = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins);
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (!origin || !(anyOrigin || allowed.has(origin))) return;
    const res = reply.raw;
    res.setHeader('access-control-allow-origin', anyOrigin ? '*' : origin);
    if (!anyOrigin) res.setHeader('vary', 'Origin');
    if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return;
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-allow-headers', 'authorization, content-type');
    res.setHeader('access-control-max-age', String(PREFLIGHT_MAX_AGE_S));
    await reply.status(204).send();
  });
}
