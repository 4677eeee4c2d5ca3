/** The Config's defaults are the engine's and the server's own (callers without a Config get the same). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ADAPTER_LOAD_TIMEOUT_S } from '../../src/adapters/loader/loader-thread.ts';
import { DEFAULTS } from '../../src/config/defaults.ts';
import { DEFAULT_STALL_TIMEOUT_SECONDS } from '../../src/engine/async-engine.ts';
import { DEFAULT_MAX_LORA_RANK } from '../../src/engine/build-engine.ts';
import { DEFAULT_ENGINE_OPTIONS } from '../../src/engine/llm-engine.ts';
import { DEFAULT_MAX_BODY_BYTES } from '../../src/server/app.ts';

test('the Config defaults match the engine, the engine thread and the server', () => {
  assert.equal(DEFAULTS.limits.maxBatchTokens, DEFAULT_ENGINE_OPTIONS.maxBatchTokens);
  assert.equal(DEFAULTS.limits.maxRunningSeqs, DEFAULT_ENGINE_OPTIONS.maxRunningSeqs);
  assert.equal(DEFAULTS.limits.kvCacheTokens, DEFAULT_ENGINE_OPTIONS.kvCacheTokens);
  assert.equal(DEFAULTS.adapters.maxLoraRank, DEFAULT_MAX_LORA_RANK);
  assert.equal(DEFAULTS.adapters.loadTimeoutSeconds, DEFAULT_ADAPTER_LOAD_TIMEOUT_S);
  assert.equal(DEFAULTS.server.engineStallTimeoutSeconds, DEFAULT_STALL_TIMEOUT_SECONDS);
  assert.equal(DEFAULTS.server.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
});
