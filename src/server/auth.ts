/**
 * API keys, checked per route: every route gets its key check when it is registered (fastify's onRoute), so
 * the check sees the route the router matched — never the raw URL, which percent-encoding (`/%761/models`)
 * or other spellings could disguise. Scopes:
 *   open  — probes and metrics (/health, /v1/health/*, /metrics), the dashboard's static files: no key, ever;
 *   admin — the runtime adapter routes: the admin key, or else the API key, when either is set;
 *   api   — every other route (routes added later included: fail closed): the API key, when set.
 * Keys are compared through their SHA-256 digests in constant time, so neither content nor length leaks.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { UI_ASSET_ROUTES } from './ui/routes.ts';

export type RouteScope = 'open' | 'api' | 'admin';

export const OPEN_ROUTES: ReadonlySet<string> = new Set([
  '/health',
  '/v1/health/live',
  '/v1/health/ready',
  '/metrics',
  // The dashboard's page, script and style: static, like any web page; the data they fetch takes the API key.
  ...UI_ASSET_ROUTES,
]);
export const ADMIN_ROUTES: ReadonlySet<string> = new Set([
  '/v1/load_lora_adapter',
  '/v1/unload_lora_adapter',
  '/v1/pin_lora_adapter',
  '/v1/rescan_lora_adapters',
]);

export interface Keys {
  /** Bearer key for the API routes (vLLM's --api-key). */
  apiKey?: string;
  /** Bearer key for the admin routes; without it they take the API key. */
  adminKey?: string;
}

export function routeScope(routePath: string): RouteScope {
  if (OPEN_ROUTES.has(routePath)) return 'open';
  if (ADMIN_ROUTES.has(routePath)) return 'admin';
  return 'api';
}

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
async function sendUnauthorized(reply: FastifyReply, message: string, code: string) {
  await reply.status(401).send({ error: { message, type: 'authentication_error', param: null, code } });
}

/** The hook that refuses requests without `Authorization: Bearer <key>`, with a 401 that says which key. */
function requireKey(key: string, message: string, code: string): onRequestHookHandler {
  return async (req, reply) => {
    if (!bearerMatches(req, key)) await sendUnauthorized(reply, message, code);
  };
}

function keyCheck(scope: RouteScope, keys: Keys): onRequestHookHandler | null {
  if (scope === 'open') return null;
  if (scope === 'admin' && keys.adminKey) {
    const message = 'this admin route needs the admin key: send "Authorization: Bearer <admin key>"';
    return requireKey(keys.adminKey, message, 'INVALID_ADMIN_KEY');
  }
  if (!keys.apiKey) return null;
  return requireKey(keys.apiKey, 'a valid API key is required: send "Authorization: Bearer <key>"', 'INVALID_API_KEY');
}

/** Must run before any route is registered: each route gets the check of its scope as its first hook. */
export function registerAuth(app: FastifyInstance, keys: Keys) {
  app.addHook('onRoute', (route) => {
    const check = keyCheck(routeScope(route.url), keys);
    if (!check) return;
    const own =
      route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [check, ...own];
  });
}
