import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StepTimeModel } from '../../src/engine/scheduler/step-time-model.ts';

const allowance = { targetMs: 50, decodeRows: 10, maxBatchTokens: 2048, minChunk: 16 };

test('until steps of two sizes are seen, the whole budget is allowed', () => {
  const m = new StepTimeModel();
  assert.equal(m.prefillTokens(allowance), 2038);
  m.observe(32, 10);
  m.observe(32, 11);
  assert.equal(m.fit(), null);
  assert.equal(m.prefillTokens(allowance), 2038);
});

test('an exact linear machine is recovered, and the step is filled to the target', () => {
  const m = new StepTimeModel();
  for (const tokens of [1, 40, 300, 2048, 64]) m.observe(tokens, 5 + 0.1 * tokens);
  const fit = m.fit();
  assert.ok(fit);
  assert.ok(Math.abs(fit.overheadMs - 5) < 1e-6 && Math.abs(fit.perTokenMs - 0.1) < 1e-9);
  // (50 - 5) / 0.1 = 450 tokens in all, 10 of them decodes.
  assert.equal(m.prefillTokens(allowance), 440);
  // Never below the minimum chunk, never above the budget.
  assert.equal(m.prefillTokens({ ...allowance, targetMs: 1 }), 16);
  assert.equal(m.prefillTokens({ ...allowance, targetMs: 1e6 }), 2038);
  assert.equal(m.prefillTokens({ ...allowance, decodeRows: 2048 }), 0);
});

test('forgetting follows a machine that slows down', () => {
  const m = new StepTimeModel(0.8);
  for (let i = 0; i < 20; i++) m.observe(i % 2 ? 100 : 400, 2 + 0.05 * (i % 2 ? 100 : 400));
  const before = m.prefillTokens(allowance);
  for (let i = 0; i < 30; i++) m.observe(i % 2 ? 100 : 400, 2 + 0.2 * (i % 2 ? 100 : 400));
  const after = m.prefillTokens(allowance);
  assert.ok(before > 800 && after < 250, `${before} → ${after}`);
});

test('non-finite or empty observations are ignored', () => {
  const m = new StepTimeModel();
  m.observe(0, 5);
  m.observe(10, Number.NaN);
  m.observe(10, -1);
  assert.equal(m.fit(), null);
});
