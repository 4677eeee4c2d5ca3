/**
 * Optional API key (vLLM's --api-key): `Authorization: Bearer <key>` on /v1/* routes; health and metrics stay
 * open for probes and scrapers. Keys are compared through their SHA-256 digests in constant time, so neither
 * content nor length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function keyMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** `exempt`: routes that check a key of their own (the admin routes under --admin-key). */
export function registerApiKey(app: FastifyInstance, apiKey: string | undefined, exempt: readonly string[] = []) {
  if (!apiKey) return;
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/') || req.url.startsWith('/v1/health/')) return;
    if (exempt.includes(req.url.split('?')[0])) return;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!keyMatches(given, apiKey)) {
      await reply.status(401).send({
        error: {
          message: 'a valid API key is required: send "Authorization: Bearer <key>"',
          type: 'authentication_error',
          param: null,
          code: 'INVALID_API_KEY',
        },
      });
    }
  });
}
