/**
 * Optional API key (vLLM's --api-key): `Authorization: Bearer <key>` on /v1/* routes; health and metrics stay
 * open for probes and scrapers. Keys are compared through their SHA-256 digests in constant time, so neither
 * content nor length leaks through timing. The admin routes check their own key with the same helpers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function keyMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** Whether the request carries `Authorization: Bearer <expected>`. */
export function bearerMatches(req: FastifyRequest, expected: string): boolean {
  const header = req.headers.authorization ?? '';
  return keyMatches(header.startsWith('Bearer ') ? header.slice(7) : '', expected);
}

/** A 401 in OpenAI's error shape. */
export async function sendUnauthorized(reply: FastifyReply, message: string, code: string) {
  await reply.status(401).send({ error: { message, type: 'authentication_error', param: null, code } });
}

/** `exempt`: routes that check a key of their own (the admin routes under --admin-key). */
export function registerApiKey(app: FastifyInstance, apiKey: string | undefined, exempt: readonly string[] = []) {
  if (!apiKey) return;
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/') || req.url.startsWith('/v1/health/')) return;
    if (exempt.includes(req.url.split('?')[0])) return;
    if (!bearerMatches(req, apiKey)) {
      await sendUnauthorized(
        reply,
        'a valid API key is required: send "Authorization: Bearer <key>"',
        'INVALID_API_KEY',
      );
    }
  });
}
