/**
 * The request log line as a log collector reads it: one pino JSON object per request, on one line, with
 * the service, level, message and the request's fields at the top level.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServeLog } from '../../src/observability/log.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { RequestTrace } from '../../src/observability/request-trace.ts';

test('a finished request writes one pino JSON line with its fields', () => {
  const written: string[] = [];
  const log = createServeLog(false, { write: (chunk: string) => void written.push(chunk) });
  let clock = 0;
  const trace = new RequestTrace(
    new Metrics('m', () => null),
    log,
    { id: 'req-3', route: '/v1/chat/completions', method: 'POST' },
    () => clock,
  );
  trace.generating('demo-robot', 12, 1);
  clock = 25;
  trace.token(0);
  clock = 30;
  trace.token(0);
  trace.choiceFinished(0, 'demo-robot', 2, 'stop');
  clock = 31.25;
  trace.end(200);

  assert.equal(written.length, 1);
  assert.ok(written[0].endsWith('\n') && written[0].indexOf('\n') === written[0].length - 1, 'one line');
  const line = JSON.parse(written[0]);
  assert.equal(typeof line.time, 'number');
  delete line.time;
  assert.deepEqual(line, {
    level: 30,
    service: 'loraplex',
    msg: 'request',
    reqId: 'req-3',
    route: '/v1/chat/completions',
    status: 200,
    adapter: 'demo-robot',
    promptTokens: 12,
    completionTokens: 2,
    finishReason: 'stop',
    ttftMs: 25,
    durationMs: 31.3,
  });
});
