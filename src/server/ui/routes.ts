/**
 * The web dashboard (on unless --no-ui): the page and its script at / and /ui/*, open like any web page, and
 * the JSON state they poll at /ui/api/state, which takes the API key as every API route does (auth.ts). The
 * page is built from ui/ into ui/dist/ (npm run build:ui) and committed, so serving it builds nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.ts';
import { LoadHistory } from './history.ts';
import { dashboardState } from './state.ts';
import { TrafficLedger } from './traffic.ts';

export const UI_ASSET_ROUTES = ['/', '/ui/app.js', '/ui/app.css'] as const;

const DIST = join(import.meta.dirname, '..', '..', '..', 'ui', 'dist');

const ASSETS: Record<(typeof UI_ASSET_ROUTES)[number], { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

// The page loads only its own script and style and talks only to this server: no CDN, nothing inline.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

function readAsset(file: string): Buffer {
  try {
    return readFileSync(join(DIST, file));
  } catch {
    throw new Error(
      `the dashboard's built file ui/dist/${file} is missing: run \`npm run build:ui\`, or serve with --no-ui`,
    );
  }
}

export function registerUiRoutes(app: FastifyInstance, ctx: ServerContext) {
  for (const route of UI_ASSET_ROUTES) {
    const { file, type } = ASSETS[route];
    const body = readAsset(file);
    app.get(route, async (_req, reply) =>
      reply
        .type(type)
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body),
    );
  }

  const ledger = new TrafficLedger();
  const history = new LoadHistory();
  let unwatch = () => {};
  ctx.lifecycle.whenReady(() => {
    unwatch = ledger.watch(ctx.engine);
  });
  const stopSampling = history.sample(() => (ctx.lifecycle.ready ? ctx.engine.stats : null));
  app.addHook('onClose', async () => {
    stopSampling();
    unwatch();
  });

  app.get('/ui/api/state', async () =>
    dashboardState({
      baseModel: ctx.baseModel,
      maxModelLen: ctx.engine.info.maxModelLen,
      stats: ctx.engine.stats,
      adapters: ctx.engine.adapters,
      traffic: ledger.snapshot(),
      history: history.all,
      admin: { enabled: ctx.admin !== undefined, ownKey: ctx.admin?.adminKey !== undefined },
    }),
  );
}
