/**
 * `npm run probes`: issue 8's probes, re-run against real `loraplex serve` processes (the demo model, a store
 * with broken adapters, runtime updates, an API key). Each probe states the trusted-server answer and checks
 * it; the table prints as markdown and the results go to a JSON file.
 *
 *   npm run probes -- [--out docs/figures/probes/probes.json] [--timing-report-only]
 *
 * Exits non-zero when any probe does not get its expected answer.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDemo } from '../src/demo/demo-model.ts';
import { readModelConfig } from '../src/model/model-dir.ts';
import type { ModuleKind } from '../src/model/modules.ts';
import { ready, type ServeProcess, startServe } from './probes/serve-process.ts';
import { type BadKind, writeAdapter, writeBadAdapter } from './soak/store-writer.ts';

const { values: args } = parseArgs({
  options: { out: { type: 'string' }, 'timing-report-only': { type: 'boolean', default: false } },
});
/** Time bounds decide a probe unless --timing-report-only (CI: a shared machine's timings only inform). */
const within = (ms: number, limit: number) => args['timing-report-only'] || ms < limit;
const KEY = 'probe-key';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  ms: number;
}

interface ProbeResult {
  probe: string;
  expected: string;
  got: string;
  ms: number;
  pass: boolean;
}

const results: ProbeResult[] = [];
let root = '';

/** Any answer sent to a client: it must not show server paths (the probe's temp root) or file contents. */
function leaks(a: Answer): string | null {
  if (root && a.body.includes(root)) return 'shows a server path';
  if (a.body.includes('SECRET-CONTENT') || a.body.includes('root:x:0')) return 'quotes file contents';
  return null;
}

async function probe(name: string, expected: string, run: () => Promise<{ got: string; pass: boolean; ms?: number }>) {
  const started = performance.now();
  try {
    const r = await run();
    results.push({
      probe: name,
      expected,
      got: r.got,
      ms: Math.round(r.ms ?? performance.now() - started),
      pass: r.pass,
    });
  } catch (e) {
    results.push({ probe: name, expected, got: `threw: ${(e as Error).message.slice(0, 200)}`, ms: 0, pass: false });
  }
  const last = results.at(-1)!;
  console.error(`${last.pass ? 'ok  ' : 'FAIL'} ${name}: ${last.got}`);
}

/** A raw HTTP request: the path goes out exactly as written. */
function send(
  base: string,
  method: string,
  path: string,
  opts: {
    body?: string;
    json?: unknown;
    key?: string | null;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<Answer> {
  const url = new URL(base);
  const body = opts.json !== undefined ? JSON.stringify(opts.json) : opts.body;
  const headers: Record<string, string> = {
    ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? KEY}` }),
    ...opts.headers,
  };
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: res.headers,
          ms: performance.now() - started,
        }),
      );
    });
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error('no answer (timed out)')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One /health round trip, paced like a busy load balancer's checks (every 10 ms): a client hammering in a
 * tight loop would compete with the server for the 2 cores and time itself rather than the server.
 */
async function healthProbeMs(url: string): Promise<number> {
  const { ms } = await send(url, 'GET', '/health', { key: null });
  await new Promise((r) => setTimeout(r, 10));
  return ms;
}

const codeOf = (a: Answer) => {
  try {
    return JSON.parse(a.body).error?.code ?? '';
  } catch {
    return a.body.includes('data: ') ? 'SSE' : '';
  }
};
const show = (a: Answer) => `${a.status} ${codeOf(a)}`.trim();

/** Expect a status (and optionally an error code), and no leak. */
function expectStatus(a: Answer, status: number, code?: string) {
  const leak = leaks(a);
  const pass = a.status === status && (code === undefined || codeOf(a) === code) && leak === null;
  return { got: `${show(a)}${leak ? ` (${leak})` : ''}`, pass, ms: a.ms };
}

const completion = (extra: Record<string, unknown> = {}) => ({
  model: 'base',
  prompt: 'Once upon a time',
  max_tokens: 4,
  ...extra,
});

async function main() {
  root = await mkdtemp(join(tmpdir(), 'loraplex-probes-'));
  const store = join(root, 'store');
  const uploads = join(root, 'uploads');
  const outside = join(root, 'outside');
  const cache = join(root, 'cache');
  const config = await readModelConfig((await ensureDemo(cache)).modelDir);
  const good = { rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'] as ModuleKind[], seed: 7 };
  const bad: BadKind[] = ['alpha-1e300', 'nan-weights', 'huge-weights', 'fifo-weights', 'weights-symlink-out'];
  for (const kind of bad) await writeBadAdapter(join(store, kind), kind, config, outside);
  for (const [i, name] of ['good', 'good-2'].entries())
    await writeAdapter(join(store, name), config, { ...good, seed: i });
  // Load warnings: a rank_pattern key that matches no module.
  await writeAdapter(join(store, 'warns'), config, good);
  const warnsConfig = join(store, 'warns', 'adapter_config.json');
  const warns = JSON.parse(await readFile(warnsConfig, 'utf8'));
  await writeFile(warnsConfig, JSON.stringify({ ...warns, rank_pattern: { no_such_module_anywhere: 4 } }));
  await writeBadAdapter(join(uploads, 'config-out'), 'config-symlink-out', config, outside);
  await writeBadAdapter(join(uploads, 'alpha'), 'alpha-1e300', config, outside);

  const env = { LORAPLEX_CACHE: cache };
  const common = [
    '--lora-dir',
    store,
    '--enable-lora-runtime-updates',
    '--allowed-lora-root',
    uploads,
    '--api-key',
    KEY,
  ];
  const server = startServe([...common, '--served-model-name', 'base'], env);
  try {
    await ready(server);
    await probeServer(server, uploads);
  } finally {
    await server.stop();
  }
  await probeQueue(env);
  await probeLifecycle(env);
  await rm(root, { recursive: true, force: true });

  const table = [
    '| probe | expected | got | ms | |',
    '| --- | --- | --- | --- | --- |',
    ...results.map((r) => `| ${r.probe} | ${r.expected} | ${r.got} | ${r.ms} | ${r.pass ? 'ok' : '**FAIL**'} |`),
  ].join('\n');
  console.log(table);
  const failed = results.filter((r) => !r.pass).length;
  console.log(`\n${results.length - failed} passed, ${failed} failed`);
  if (args.out) {
    await mkdir(dirname(args.out), { recursive: true });
    await writeFile(args.out, `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`);
  }
  process.exit(failed > 0 ? 1 : 0);
}

async function probeServer(server: ServeProcess, uploads: string) {
  const { url } = server;
  const post = (path: string, json: unknown, opts: { key?: string | null } = {}) =>
    send(url, 'POST', path, { json, ...opts });

  // 1. Auth at the router.
  await probe('POST /%761/completions, no key', '401', async () =>
    expectStatus(await post('/%761/completions', completion(), { key: null }), 401),
  );
  await probe('GET /%76%31/models, no key', '401', async () =>
    expectStatus(await send(url, 'GET', '/%76%31/models', { key: null }), 401),
  );
  await probe('POST /%761/load_lora_adapter, no key (API key only)', '401', async () =>
    expectStatus(await post('/%761/load_lora_adapter', { lora_name: 'x', lora_path: uploads }, { key: null }), 401),
  );
  await probe('POST /%761/rescan_lora_adapters, no key', '401', async () =>
    expectStatus(await post('/%761/rescan_lora_adapters', {}, { key: null }), 401),
  );

  // 2. A 1e300 alpha: refused at load, nothing else harmed.
  await probe('load_lora_adapter with lora_alpha 1e300', '400, at load', async () =>
    expectStatus(await post('/v1/load_lora_adapter', { lora_name: 'alpha', lora_path: join(uploads, 'alpha') }), 400),
  );
  await probe('store adapter with lora_alpha 1e300', '400', async () =>
    expectStatus(await post('/v1/completions', completion({ model: 'alpha-1e300' })), 400),
  );
  await probe('the base after it, and readiness', '200, 200', async () => {
    const a = await post('/v1/completions', completion());
    const h = await send(url, 'GET', '/v1/health/ready', { key: null });
    return { got: `${a.status}, ${h.status}`, pass: a.status === 200 && h.status === 200 };
  });

  // 4. Stalls: FIFO weights, 1 MB and 10 MB prompts.
  await probe('store adapter whose weights are a FIFO', '400 at once', async () =>
    expectStatus(await post('/v1/completions', completion({ model: 'fifo-weights' })), 400),
  );
  await probe('a cold load after the FIFO', '200', async () =>
    expectStatus(await post('/v1/completions', completion({ model: 'good' })), 200),
  );
  for (const mb of [1, 10]) {
    await probe(`a ${mb} MB prompt, and /health meanwhile`, '400 at once; /health < 100 ms', async () => {
      const big = post('/v1/completions', completion({ prompt: 'a'.repeat(mb * 1024 * 1024) }));
      let slowest = 0;
      let settled = false;
      void big.finally(() => {
        settled = true;
      });
      while (!settled) slowest = Math.max(slowest, await healthProbeMs(url));
      const a = await big;
      const r = expectStatus(a, 400);
      return {
        got: `${r.got}; /health slowest ${slowest.toFixed(1)} ms`,
        pass: r.pass && within(a.ms, 1000) && within(slowest, 100),
        ms: a.ms,
      };
    });
  }
  await probe(
    'the largest allowed prompt (one 128 KiB word), and /health meanwhile',
    '400 (over the context); /health < 100 ms',
    async () => {
      const big = post('/v1/completions', completion({ prompt: 'a'.repeat(32 * 4096) }));
      let slowest = 0;
      let answered = 0;
      let settled = false;
      void big.finally(() => {
        settled = true;
      });
      while (!settled) {
        slowest = Math.max(slowest, await healthProbeMs(url));
        answered++;
      }
      const a = await big;
      return {
        got: `${show(a)} after ${a.ms.toFixed(0)} ms; ${answered} probes, slowest ${slowest.toFixed(1)} ms`,
        pass: a.status === 400 && within(slowest, 100),
        ms: a.ms,
      };
    },
  );

  // 5. Wrong 200s.
  for (const model of ['nan-weights', 'huge-weights']) {
    await probe(`store adapter with ${model}`, '400', async () =>
      expectStatus(await post('/v1/completions', completion({ model })), 400),
    );
  }
  await probe('prompt: [9707]', '200, 1 prompt token', async () => {
    const a = await post('/v1/completions', completion({ prompt: [9707] }));
    const tokens = a.status === 200 ? JSON.parse(a.body).usage.prompt_tokens : null;
    return { got: `${a.status}, ${tokens} prompt token(s)`, pass: a.status === 200 && tokens === 1, ms: a.ms };
  });
  for (const prompt of [[-1], [151665], [1.5]]) {
    await probe(`prompt: ${JSON.stringify(prompt)}`, '400', async () =>
      expectStatus(await post('/v1/completions', completion({ prompt })), 400),
    );
  }
  for (const [field, value] of Object.entries({
    response_format: { type: 'json_object' },
    tools: [{ type: 'function', function: { name: 'f' } }],
    suffix: 'x',
  })) {
    await probe(`${field}: ${JSON.stringify(value)}`, '400 PARAMETER_UNSUPPORTED', async () =>
      expectStatus(await post('/v1/completions', completion({ [field]: value })), 400, 'PARAMETER_UNSUPPORTED'),
    );
  }
  // Served since issue 12 (penalties and logit_bias on the row, echo, best_of): accepted, and out of range a 400.
  for (const [field, value, bad] of [
    ['logit_bias', { '1': 10 }, { '1': 1000 }],
    ['presence_penalty', 1, 3],
    ['frequency_penalty', 1, -3],
    ['echo', true, 'yes'],
    ['best_of', 3, 0],
  ] as const) {
    await probe(`${field}: ${JSON.stringify(value)}`, '200', async () =>
      expectStatus(await post('/v1/completions', completion({ [field]: value })), 200),
    );
    await probe(`${field}: ${JSON.stringify(bad)}`, '400', async () =>
      expectStatus(await post('/v1/completions', completion({ [field]: bad })), 400),
    );
  }

  // 6. Client mistakes.
  const raw = (body: string | undefined, headers: Record<string, string>, method = 'POST') =>
    send(url, method, '/v1/completions', { body, headers });
  const json = { 'content-type': 'application/json' };
  await probe('malformed JSON', '400', async () => expectStatus(await raw('{"model": ', json), 400));
  await probe('empty body', '400', async () => expectStatus(await raw('', json), 400));
  await probe('NaN literal', '400', async () =>
    expectStatus(await raw('{"model":"base","prompt":"x","top_p":NaN}', json), 400),
  );
  await probe('Infinity literal', '400', async () =>
    expectStatus(await raw('{"model":"base","prompt":"x","max_tokens":Infinity}', json), 400),
  );
  await probe('no content type', '415', async () => expectStatus(await raw(JSON.stringify(completion()), {}), 415));
  await probe('text/plain', '415', async () =>
    expectStatus(await raw(JSON.stringify(completion()), { 'content-type': 'text/plain' }), 415),
  );
  await probe('OPTIONS with a JSON header', '404', async () =>
    expectStatus(await raw(undefined, json, 'OPTIONS'), 404),
  );
  await probe('DELETE with a JSON header', '404', async () => expectStatus(await raw(undefined, json, 'DELETE'), 404));
  await probe('a 17 MB body', '413', async () =>
    expectStatus(await raw(JSON.stringify(completion({ prompt: 'x'.repeat(17 * 1024 * 1024) })), json), 413),
  );

  // 7. Leaks.
  await probe(
    'load_lora_adapter: adapter_config.json symlinked to a file outside the root',
    '400, no contents, no paths',
    async () =>
      expectStatus(
        await post('/v1/load_lora_adapter', { lora_name: 'config-out', lora_path: join(uploads, 'config-out') }),
        400,
      ),
  );
  await probe('store adapter whose weights are symlinked out of the store', '400', async () =>
    expectStatus(await post('/v1/completions', completion({ model: 'weights-symlink-out' })), 400),
  );
  await probe('load_lora_adapter outside the allowed root', '400, no server paths', async () =>
    expectStatus(await post('/v1/load_lora_adapter', { lora_name: 'etc', lora_path: '/etc' }), 400),
  );
  await probe('a 1 MB unknown model name', '404, short body', async () => {
    const a = await post('/v1/completions', completion({ model: 'm'.repeat(1024 * 1024) }));
    const r = expectStatus(a, 404);
    return { got: `${r.got}, ${a.body.length} bytes`, pass: r.pass && a.body.length < 2048, ms: a.ms };
  });

  // 8. n ≥ 11: no MaxListenersExceededWarning in the log.
  await probe('n = 16, streaming', '200, no warning logged', async () => {
    const a = await post('/v1/completions', completion({ n: 16, stream: true }));
    const warned = server.log().includes('MaxListenersExceededWarning');
    return { got: `${a.status}${warned ? ', warning logged' : ''}`, pass: a.status === 200 && !warned, ms: a.ms };
  });

  // 9. Adapter warnings reach the user.
  await probe('adapter warnings in /v1/models and the log', 'listed and logged', async () => {
    const a = await post('/v1/completions', completion({ model: 'warns' }));
    const models = JSON.parse((await send(url, 'GET', '/v1/models')).body).data as {
      id: string;
      warnings?: string[];
    }[];
    const listed = models.find((m) => m.id === 'warns')?.warnings ?? [];
    const logged = server.log().includes('no_such_module_anywhere');
    return {
      got: `${a.status}; ${listed.length} warning(s) listed; ${logged ? 'logged' : 'not logged'}`,
      pass: a.status === 200 && listed.length > 0 && logged,
      ms: a.ms,
    };
  });
}

/** 3. A streaming request refused by a full queue keeps its 429 and Retry-After. */
async function probeQueue(env: Record<string, string>) {
  const server = startServe(
    ['--served-model-name', 'base', '--max-running-seqs', '1', '--max-waiting-requests', '1'],
    env,
  );
  try {
    await ready(server);
    const post = (json: unknown) => send(server.url, 'POST', '/v1/completions', { json, key: null });
    await probe('stream: true with a full waiting queue', '429 + Retry-After', async () => {
      const running = post(completion({ max_tokens: 2000, ignore_eos: true, stream: true }));
      const waiting = post(completion({ max_tokens: 2, stream: true }));
      let refused: Answer | null = null;
      for (let i = 0; i < 200 && !refused; i++) {
        const a = await post(completion({ stream: true, max_tokens: 1 }));
        if (a.status === 429) refused = a;
      }
      await Promise.all([running, waiting]);
      if (!refused) return { got: 'never refused', pass: false };
      const r = expectStatus(refused, 429);
      return {
        got: `${r.got}, retry-after ${refused.headers['retry-after']}`,
        pass: r.pass && refused.headers['retry-after'] === '1',
        ms: refused.ms,
      };
    });
  } finally {
    await server.stop();
  }
}

/** 8. SIGTERM: drain-timeout honoured, and during loading. */
async function probeLifecycle(env: Record<string, string>) {
  const draining = startServe(['--served-model-name', 'base', '--drain-timeout', '2'], env);
  try {
    await ready(draining);
    await probe(
      '--drain-timeout 2, SIGTERM during a long stream',
      'error event + [DONE]; exit 0 within 4 s',
      async () => {
        const res = await fetch(`${draining.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(completion({ max_tokens: 4000, ignore_eos: true, stream: true })),
        });
        // The stream is running once its first event has come; then the signal.
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        let body = decoder.decode((await reader.read()).value);
        const signalled = performance.now();
        draining.child.kill('SIGTERM');
        const exited = draining.exited(signalled);
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
          body += decoder.decode(chunk.value);
        const exit = await exited;
        const ended = body.trimEnd().endsWith('data: [DONE]') && body.includes('"error"');
        return {
          got: `exit ${exit.code} after ${(exit.afterMs / 1000).toFixed(1)} s; stream ${ended ? 'ended with an error event + [DONE]' : 'did not end cleanly'}`,
          pass: exit.code === 0 && within(exit.afterMs, 4000) && ended,
          ms: exit.afterMs,
        };
      },
    );
  } finally {
    await draining.stop();
  }
  const loading = startServe([], env);
  try {
    await probe('SIGTERM while the model loads', 'exit 0 within 2 s', async () => {
      await loading.logged('listening on');
      const signalled = performance.now();
      loading.child.kill('SIGTERM');
      const exit = await loading.exited(signalled);
      return {
        got: `exit ${exit.code} after ${(exit.afterMs / 1000).toFixed(1)} s`,
        pass: exit.code === 0 && within(exit.afterMs, 2000),
        ms: exit.afterMs,
      };
    });
  } finally {
    await loading.stop();
  }
}

await main();
