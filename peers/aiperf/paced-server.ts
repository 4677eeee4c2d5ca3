/**
 * A paced OpenAI-compatible server for checking measurement, not inference: each model answers on a fixed
 * clock (first token after `ttftMs`, then one token every `itlMs`), with no computation, so two load
 * generators that define TTFT/ITL the same way must report the same numbers whatever the machine's load.
 *
 *   node --import tsx peers/aiperf/paced-server.ts --port 18432
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '18432' } } });

const BASE = 'paced-base';
/** Per model: time to first token and between tokens (ms). */
const PACE: Record<string, { ttftMs: number; itlMs: number }> = {
  [BASE]: { ttftMs: 30, itlMs: 6 },
  'demo-pirate': { ttftMs: 40, itlMs: 8 },
  'demo-poet': { ttftMs: 60, itlMs: 10 },
  'demo-chef': { ttftMs: 80, itlMs: 12 },
  'demo-robot': { ttftMs: 100, itlMs: 14 },
};

const waitUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));

function json(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const start = performance.now();
  if (req.method === 'GET' && (req.url === '/health' || req.url === '/v1/health/ready')) {
    return json(res, 200, { status: 'ok' });
  }
  if (req.method === 'GET' && req.url === '/v1/models') {
    return json(res, 200, {
      object: 'list',
      data: Object.keys(PACE).map((id) => ({ id, object: 'model', parent: id === BASE ? null : BASE, root: BASE })),
    });
  }
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions')
    return json(res, 404, { error: { message: 'no route' } });
  let raw = '';
  for await (const chunk of req) raw += chunk;
  const body = JSON.parse(raw) as {
    model: string;
    messages: { content: string }[];
    max_tokens?: number;
    max_completion_tokens?: number;
    stream?: boolean;
  };
  const pace = PACE[body.model];
  if (!pace) return json(res, 404, { error: { message: `model '${body.model}' not found` } });
  const tokens = body.max_tokens ?? body.max_completion_tokens ?? 16;
  const usage = {
    prompt_tokens: body.messages
      .map((m) => m.content)
      .join(' ')
      .split(/\s+/).length,
    completion_tokens: tokens,
  };
  const text = (i: number) => ` w${i}`;
  if (!body.stream) {
    await waitUntil(start + pace.ttftMs + (tokens - 1) * pace.itlMs);
    return json(res, 200, {
      object: 'chat.completion',
      model: body.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: Array.from({ length: tokens }, (_, i) => text(i)).join('') },
          finish_reason: 'length',
        },
      ],
      usage: { ...usage, total_tokens: usage.prompt_tokens + tokens },
    });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
  const chunk = (delta: Record<string, string>, finish: string | null) => ({
    object: 'chat.completion.chunk',
    model: body.model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  send(chunk({ role: 'assistant', content: '' }, null));
  for (let i = 0; i < tokens; i++) {
    await waitUntil(start + pace.ttftMs + i * pace.itlMs); // an absolute clock: no drift
    send(chunk({ content: text(i) }, i === tokens - 1 ? 'length' : null));
  }
  send({
    object: 'chat.completion.chunk',
    model: body.model,
    choices: [],
    usage: { ...usage, total_tokens: usage.prompt_tokens + tokens },
  });
  res.end('data: [DONE]\n\n');
});

server.listen(Number(values.port), '127.0.0.1', () => console.error(`paced server on http://127.0.0.1:${values.port}`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
