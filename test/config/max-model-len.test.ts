/** The context length: the model's (as vLLM derives it), lowered by --max-model-len, held against the KV cache. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { modelMaxLen, readModelMaxLen, resolveMaxModelLen } from '../../src/config/max-model-len.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tiny');

test("the model's limit is max_position_embeddings without rope scaling, or with default / llama3 rope", () => {
  assert.equal(modelMaxLen({ max_position_embeddings: 4096 }), 4096);
  assert.equal(modelMaxLen({ max_position_embeddings: 4096, rope_scaling: null }), 4096);
  assert.equal(modelMaxLen({ max_position_embeddings: 4096, rope_parameters: { rope_type: 'default' } }), 4096);
  // llama3 configs already give the extended length (131072 for Llama 3.1): no multiplying.
  const llama3 = { rope_type: 'llama3', factor: 8, original_max_position_embeddings: 8192 };
  assert.equal(modelMaxLen({ max_position_embeddings: 131072, rope_scaling: llama3 }), 131072);
});

test('linear, dynamic and yarn rope scaling extend the context by their factor (vLLM _get_and_verify_max_len)', () => {
  assert.equal(modelMaxLen({ max_position_embeddings: 4096, rope_scaling: { type: 'linear', factor: 2 } }), 8192);
  assert.equal(modelMaxLen({ max_position_embeddings: 2048, rope_scaling: { type: 'dynamic', factor: 4 } }), 8192);
  assert.equal(
    modelMaxLen({
      max_position_embeddings: 32768,
      rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
    }),
    131072,
  );
  assert.equal(
    modelMaxLen({ max_position_embeddings: 1000, rope_parameters: { rope_type: 'yarn', factor: 2.5 } }),
    2500,
  );
  assert.throws(
    () => modelMaxLen({ max_position_embeddings: 10, rope_scaling: { type: 'linear' } }),
    /positive 'factor'/,
  );
});

test('a committed fixture model: its config.json gives the limit', async () => {
  assert.equal(await readModelMaxLen(join(fixtures, 'llama-tied', 'model')), 128);
  assert.equal(await readModelMaxLen(join(fixtures, 'llama3-rope', 'model')), 128);
});

test('--max-model-len lowers the limit; above it is an error naming the flag and the limit', () => {
  assert.deepEqual(resolveMaxModelLen({ modelMax: 128, requested: 64, kvCacheTokens: 4096 }), {
    maxModelLen: 64,
    warning: null,
  });
  assert.throws(
    () => resolveMaxModelLen({ modelMax: 128, requested: 129, kvCacheTokens: 4096 }),
    /--max-model-len 129 is above the model's limit of 128 tokens/,
  );
});

test('a KV cache smaller than one sequence: an error when --max-model-len asked for it, else clamped with a warning', () => {
  assert.throws(
    () => resolveMaxModelLen({ modelMax: 8192, requested: 4096, kvCacheTokens: 1024 }),
    /--kv-cache-tokens 1024 cannot hold one sequence of --max-model-len 4096/,
  );
  const clamped = resolveMaxModelLen({ modelMax: 131072, requested: undefined, kvCacheTokens: 32768 });
  assert.equal(clamped.maxModelLen, 32768);
  assert.match(clamped.warning ?? '', /allows 131072 tokens but --kv-cache-tokens is 32768/);
  assert.deepEqual(resolveMaxModelLen({ modelMax: 128, requested: undefined, kvCacheTokens: 32768 }), {
    maxModelLen: 128,
    warning: null,
  });
});
