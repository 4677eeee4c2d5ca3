/** The soak's judgement of one response: what counts as ok, expected, a hang, a disconnect or a failure. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RawResponse } from '../../bench/soak/http.ts';
import { classify, fails } from '../../bench/soak/outcome.ts';

const raw = (over: Partial<RawResponse>): RawResponse => ({
  status: 200,
  errorCode: null,
  errorMessage: null,
  streamError: false,
  complete: true,
  abortedByClient: false,
  timedOut: false,
  networkError: null,
  startMs: 0,
  firstTokenMs: 5,
  endMs: 10,
  ...over,
});
const ok = { expect: [200] };
const refused = { expect: [400] };

describe('soak outcome', () => {
  test('a complete expected 2xx is ok; one without [DONE] is truncated; an error event is a stream error', () => {
    assert.equal(classify(ok, raw({})).outcome, 'ok');
    assert.equal(classify(ok, raw({ complete: false })).outcome, 'truncated');
    assert.deepEqual(classify(ok, raw({ streamError: true, errorCode: 'engine_fault' })), {
      outcome: 'stream_error',
      detail: 'engine_fault',
      injected: false,
    });
  });

  test('a refusal is expected only with the expected status and a reason', () => {
    assert.equal(classify(refused, raw({ status: 400, errorMessage: 'r: 128 > 32' })).outcome, 'expected_4xx');
    assert.equal(classify(refused, raw({ status: 404, errorMessage: 'not found' })).outcome, 'unexpected_4xx');
    assert.equal(classify(refused, raw({ status: 400 })).detail, '400 without a reason');
    assert.equal(classify(ok, raw({ status: 400, errorMessage: 'no' })).outcome, 'unexpected_4xx');
  });

  test('a broken adapter served with 200 is an unexpected 2xx', () => {
    assert.equal(classify(refused, raw({})).outcome, 'unexpected_2xx');
  });

  test('an unload during the request makes its 404 acceptable', () => {
    assert.equal(classify(ok, raw({ status: 404, errorMessage: 'gone' }), [404]).outcome, 'expected_4xx');
  });

  test('a timeout is a hang, even after headers; a 5xx fails unless injected', () => {
    assert.equal(classify(ok, raw({ timedOut: true, status: 200, complete: false })).outcome, 'hang');
    assert.equal(classify(ok, raw({ timedOut: true, status: null })).detail, 'no status');
    const fault = classify(ok, raw({ status: 503, errorMessage: 'engine died' }));
    assert.equal(fault.outcome, '5xx');
    assert.ok(fails(fault));
    const injected = classify({ expect: [200, 503] }, raw({ status: 503, errorMessage: 'draining' }));
    assert.ok(injected.injected);
    assert.ok(!fails(injected));
  });

  test('requests naming the adapter told to fail may fail with a 5xx or an error event; others may not', () => {
    const faulty = { expect: [200, 400], injected: true };
    assert.ok(!fails(classify(faulty, raw({ status: 500, errorMessage: 'injected' }))));
    assert.ok(!fails(classify(faulty, raw({ streamError: true, errorCode: 'adapter_fault' }))));
    assert.equal(classify(faulty, raw({ status: 400, errorMessage: 'adapter broken' })).outcome, 'expected_4xx');
    assert.ok(fails(classify(ok, raw({ streamError: true, errorCode: 'adapter_fault' }))));
  });

  test('a planned disconnect is not a failure, but a 5xx before it is', () => {
    const gone = classify(ok, raw({ abortedByClient: true, status: null, complete: false }));
    assert.equal(gone.outcome, 'disconnect');
    assert.ok(!fails(gone));
    assert.equal(classify(ok, raw({ abortedByClient: true, status: 500 })).outcome, '5xx');
  });

  test('a reset connection is a network failure; an answer showing a secret is a leak', () => {
    assert.equal(classify(ok, raw({ status: null, networkError: 'ECONNRESET' })).detail, 'ECONNRESET');
    const leak = classify(
      refused,
      raw({ status: 400, errorMessage: 'bad file /tmp/soak-x/store/a/c.json' }),
      [],
      ['/tmp/soak-x'],
    );
    assert.equal(leak.outcome, 'leak');
    assert.ok(fails(leak));
    const echo = { expect: [400], body: '{"lora_path":"/tmp/soak-x/outside"}' };
    const echoed = raw({ status: 400, errorMessage: "lora_path '/tmp/soak-x/outside' is not inside" });
    assert.equal(classify(echo, echoed, [], ['/tmp/soak-x']).outcome, 'expected_4xx');
  });
});
