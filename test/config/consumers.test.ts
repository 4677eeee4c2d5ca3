/**
 * The Config's values as the built things report them: a tiny engine on the committed fixture model (reference
 * backend), the engine thread behind GET /v1/models, and the native kernels' state.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildOptionsOf, engineStartOf, nativeConfigOf, serverContextOf } from '../../src/cli/config-parts.ts';
import { buildConfig } from '../../src/config/build-config.ts';
import type { ConfigFlags } from '../../src/config/flags.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import { configureNative, nativeState } from '../../src/kernels/native/config.ts';
import { buildApp } from '../../src/server/app.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import type { TextCodec } from '../../src/tokenizer/text-codec.ts';

const MODEL = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied', 'model');
const noDemo = async () => {
  throw new Error('not in this test');
};
const configOf = async (flags: ConfigFlags) =>
  (await buildConfig({ model: MODEL, backend: 'reference', ...flags }, {}, { ensureDemo: noDemo })).config;

test("with no flags, the engine's context length is the model's (max_position_embeddings 128), not 4096", async () => {
  const { engine } = await buildEngine(buildOptionsOf(await configOf({})));
  assert.equal(engine.options.maxModelLen, 128);
  await engine.adapters.close();
});

test('the engine flags reach the built engine', async () => {
  const config = await configOf({
    maxModelLen: 64,
    maxBatchTokens: 48,
    maxRunningSeqs: 3,
    kvCacheTokens: 1024,
    maxLoras: 2,
    maxCpuLoras: 5,
    maxWaitingRequests: 7,
    loraDtype: 'bf16',
    kvCacheDtype: 'f32', // explicit, where 'auto' leaves it unset (bf16 is the engine owner's to implement)
  });
  const { engine } = await buildEngine(buildOptionsOf(config));
  const o = engine.options;
  assert.deepEqual(
    [o.maxModelLen, o.maxBatchTokens, o.maxRunningSeqs, o.kvCacheTokens, o.maxLoras, o.maxCpuLoras],
    [64, 48, 3, 1024, 2, 5],
  );
  assert.equal(o.maxWaitingRequests, 7);
  assert.equal(o.loraDtype, 'bf16');
  assert.equal((o as { kvCacheDtype?: string }).kvCacheDtype, 'f32');
  // A prompt + max_tokens past the lowered length is refused by the engine itself.
  assert.throws(() => engine.addRequest({ promptIds: [1, 2, 3], adapter: null, params: { maxTokens: 62 } }), /64/);
  await engine.adapters.close();
});

test("'auto' precision leaves the engine its own choice", async () => {
  const { engine } = await buildEngine(buildOptionsOf(await configOf({})));
  assert.equal(engine.options.loraDtype, undefined);
  assert.equal((engine.options as { kvCacheDtype?: string }).kvCacheDtype, undefined);
  await engine.adapters.close();
});

test('GET /v1/models lists max_model_len on every model, from the engine thread built from the Config', async () => {
  const config = await configOf({ maxModelLen: 96, servedModelName: 'tiny' });
  const [build, start] = engineStartOf(config);
  const engine = await AsyncEngine.start(build, start);
  const lifecycle = new Lifecycle(false);
  const ctx = serverContextOf(config, {} as TextCodec, lifecycle);
  ctx.engine = engine;
  lifecycle.markReady();
  const app = buildApp(ctx);
  try {
    const res = await app.inject({ method: 'GET', url: '/v1/models' });
    assert.equal(res.statusCode, 200);
    const models = res.json().data as { id: string; max_model_len: number }[];
    assert.ok(models.length >= 1);
    assert.equal(models[0].id, 'tiny');
    for (const m of models) assert.equal(m.max_model_len, 96, m.id);
  } finally {
    await app.close();
    await engine.close();
  }
});

test('--threads and --isa reach the native kernels (nativeState)', async () => {
  const before = nativeState();
  try {
    const config = await configOf({ threads: 1, isa: 'scalar' });
    const state = configureNative(nativeConfigOf(config));
    assert.equal(state.threads, 1);
    assert.equal(state.isa, 'scalar');
    assert.equal(state.q4kAmx, false, 'Q4_K batches leave AMX-INT8 with the VNNI kernels');
  } finally {
    configureNative({ threads: before.threads, isa: before.isa });
  }
});
