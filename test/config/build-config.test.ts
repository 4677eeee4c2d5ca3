/** buildConfig: names, defaults, the environment, and the refusals and warnings said once at start-up. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildConfig } from '../../src/config/build-config.ts';
import type { ConfigFlags } from '../../src/config/flags.ts';

const MODEL = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied', 'model');
const fakeDemo = async (cacheDir: string) => ({
  modelDir: MODEL,
  adapters: [{ name: 'demo-a', dir: join(cacheDir, 'demo-a') }],
});
const build = (flags: ConfigFlags, env: Record<string, string> = {}) =>
  buildConfig(flags, env, { ensureDemo: fakeDemo });

test('no --model: the demo (in LORAPLEX_CACHE), its adapters first, served as loraplex-demo', async () => {
  const { config } = await build({ adapter: [{ name: 'mine', dir: '/m' }] }, { LORAPLEX_CACHE: '/cache' });
  assert.equal(config.model.demo, true);
  assert.equal(config.model.cacheDir, '/cache');
  assert.equal(config.model.servedModelName, 'loraplex-demo');
  assert.deepEqual(
    config.adapters.static.map((a) => a.name),
    ['demo-a', 'mine'],
  );
});

test("the base model's name: --served-model-name, else the merged adapter's folder, else the model's", async () => {
  assert.equal((await build({ model: MODEL })).config.model.servedModelName, 'model');
  assert.equal((await build({ model: MODEL, mergeAdapter: '/a/sql/' })).config.model.servedModelName, 'sql');
  const named = await build({ model: MODEL, mergeAdapter: '/a/sql', servedModelName: 'x' });
  assert.equal(named.config.model.servedModelName, 'x');
});

test('defaults: the model decides the context length; no bound on waiting requests without the flag', async () => {
  const { config, warnings } = await build({ model: MODEL });
  assert.equal(config.model.maxModelLen, 128);
  assert.equal(config.model.modelMaxLen, 128);
  assert.equal(config.limits.kvCacheTokens, 32768);
  assert.equal(config.limits.maxBatchTokens, 512);
  assert.equal(config.limits.maxWaitingRequests, null);
  assert.equal(config.precision.loraDtype, 'auto');
  assert.equal(config.precision.kvCacheDtype, 'auto');
  assert.deepEqual(warnings, []);
});

test('refusals name the flags: runtime updates with nowhere to load from, --max-cpu-loras below --max-loras, more running sequences than a step has tokens', async () => {
  await assert.rejects(build({ model: MODEL, enableLoraRuntimeUpdates: true }), /--allowed-lora-root/);
  await assert.rejects(
    build({ model: MODEL, maxLoras: 8, maxCpuLoras: 4 }),
    /--max-cpu-loras 4 is below --max-loras 8/,
  );
  await assert.rejects(build({ model: MODEL, maxModelLen: 4096 }), /above the model's limit of 128/);
  await assert.rejects(
    build({ model: MODEL, maxRunningSeqs: 1024 }),
    /--max-running-seqs 1024 is above --max-batch-tokens 512: .* at least 1024/,
  );
  const wide = await build({ model: MODEL, maxRunningSeqs: 1024, maxBatchTokens: 1024 });
  assert.equal(wide.config.limits.maxRunningSeqs, 1024);
  // Without --max-running-seqs, its default shrinks to a smaller budget.
  const narrow = await build({ model: MODEL, maxBatchTokens: 64 });
  assert.equal(narrow.config.limits.maxRunningSeqs, 64);
});

test('warnings: runtime updates open to anyone, a stall timeout not above the load timeout, a clamped context', async () => {
  const open = await build({ model: MODEL, enableLoraRuntimeUpdates: 'true', loraDir: '/store' });
  assert.match(open.warnings.join('\n'), /WARNING: runtime adapter updates are enabled with no --admin-key/);
  assert.deepEqual(open.config.adapters.allowedRoots, ['/store']);
  const stall = await build({ model: MODEL, engineStallTimeout: 30, adapterLoadTimeout: 60 });
  assert.match(stall.warnings.join('\n'), /--engine-stall-timeout \(30 s\) is not above --adapter-load-timeout/);
  const small = await build({ model: MODEL, kvCacheTokens: 64 });
  assert.equal(small.config.model.maxModelLen, 64);
  assert.match(small.warnings.join('\n'), /allows 128 tokens but --kv-cache-tokens is 64/);
});

test('--lora-refresh-interval only counts with a store (there is nothing to rescan otherwise)', async () => {
  assert.equal((await build({ model: MODEL, loraRefreshInterval: 30 })).config.adapters.refreshIntervalSeconds, 0);
  const store = await build({ model: MODEL, loraRefreshInterval: 30, loraDir: '/s' });
  assert.equal(store.config.adapters.refreshIntervalSeconds, 30);
});

test('flags given where nothing reads them are said at start', async () => {
  const said = async (flags: ConfigFlags) => (await build({ model: MODEL, ...flags })).warnings.join('\n');
  assert.match(await said({ loraRefreshInterval: 30 }), /--lora-refresh-interval has no effect without --lora-dir/);
  assert.match(
    await said({ adminKey: 'k', allowedLoraRoot: ['/r'] }),
    /--allowed-lora-root and --admin-key: no effect without --enable-lora-runtime-updates/,
  );
  assert.match(await said({ backend: 'reference', threads: 2 }), /--threads: no effect on the reference backend/);
  assert.equal(
    await said({ backend: 'native', threads: 2, adminKey: 'k', enableLoraRuntimeUpdates: true, loraDir: '/s' }),
    '',
  );
});
