import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createError, ERROR_CATALOGUE, isLoraplexError, LoraplexError } from '../../src/observability/errors.ts';

test('every catalogue entry has an HTTP status, an OpenAI error type and a message template', () => {
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    assert.match(code, /^[A-Z][A-Z0-9_]+$/);
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.equal(typeof spec.type, 'string');
    assert.equal(typeof spec.message, 'function');
  }
  assert.equal(ERROR_CATALOGUE.ADAPTER_NOT_FOUND.status, 404);
  assert.equal(ERROR_CATALOGUE.ADAPTER_NOT_FOUND.type, 'not_found_error');
  assert.equal(ERROR_CATALOGUE.ADAPTER_INVALID_CONFIG.status, 400);
  assert.equal(ERROR_CATALOGUE.ADAPTER_INVALID_CONFIG.type, 'invalid_request_error');
});

test('createError fills code, status, type, param and the message from its template', () => {
  const cause = new Error('low level');
  const e = createError('ADAPTER_NOT_FOUND', { name: 'sql', where: '/adapters' }, { param: 'model', cause });
  assert.ok(e instanceof LoraplexError && e instanceof Error);
  assert.equal(e.name, 'LoraplexError');
  assert.equal(e.code, 'ADAPTER_NOT_FOUND');
  assert.equal(e.status, 404);
  assert.equal(e.type, 'not_found_error');
  assert.equal(e.param, 'model');
  assert.equal(e.cause, cause);
  assert.equal(e.message, "adapter 'sql' not found in /adapters");
  assert.ok(isLoraplexError(e) && isLoraplexError(e, 'ADAPTER_NOT_FOUND') && !isLoraplexError(e, 'INTERNAL_ERROR'));
  assert.ok(!isLoraplexError(cause));
});

test('file problems read "file: field: problem (hint: fix)"', () => {
  const e = createError('ADAPTER_INVALID_CONFIG', {
    file: 'a/adapter_config.json',
    field: 'r',
    problem: 'missing',
    hint: 'add it',
  });
  assert.equal(e.message, 'a/adapter_config.json: r: missing (hint: add it)');
  const noField = createError('ADAPTER_WEIGHTS_INVALID', { file: 'w.safetensors', problem: 'truncated' });
  assert.equal(noField.message, 'w.safetensors: truncated');
});

test('the base-mismatch hint names the model the adapter was trained on, when known', () => {
  const known = createError('ADAPTER_BASE_MISMATCH', { file: 'f', problem: 'p', baseModel: 'meta-llama/Llama-3.2-1B' });
  assert.match(known.message, /\(hint: maybe wrong base model\? the adapter was trained on 'meta-llama\/Llama-3.2-1B'/);
  const unknown = createError('ADAPTER_BASE_MISMATCH', { file: 'f', problem: 'p', baseModel: null });
  assert.equal(unknown.message, 'f: p (hint: maybe wrong base model?)');
});

test('toOpenAIError gives the OpenAI error body', () => {
  const e = createError('ADAPTER_RANK_TOO_HIGH', { file: 'c.json', where: "'r'", rank: 64, maxRank: 16 });
  assert.deepEqual(e.toOpenAIError(), {
    error: { message: e.message, type: 'invalid_request_error', param: null, code: 'ADAPTER_RANK_TOO_HIGH' },
  });
  assert.match(e.message, /LoRA rank 64 \('r'\) exceeds the server's maximum LoRA rank 16/);
});
