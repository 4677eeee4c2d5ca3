/** GET /version (vLLM's): the package's version, read once from package.json (behind the API key, like /v1/*). */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

export const VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

export function registerVersionRoute(app: FastifyInstance) {
  app.get('/version', async () => ({ version: VERSION }));
}
