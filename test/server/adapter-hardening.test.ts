/**
 * Bad adapters on a real loopback server fail closed, alone, and at once: a FIFO as weights, weights
 * symlinked out of the store, a config symlinked to a secret outside the load root, NaN weights, an absurd
 * lora_alpha. Each answers a 400 that shows neither file contents nor server paths, while good adapters keep
 * loading; load warnings are listed in /v1/models.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type DemoAdapterSpec, ensureDemo, writeDemoAdapter } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import type { buildApp } from '../../src/server/app.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { testApp } from './loopback.ts';

const SPEC: DemoAdapterSpec = { name: 'x', r: 4, alpha: 8, rslora: false, targets: ['q_proj', 'v_proj'] };
const SECRET = 'root:x:0:0:loraplex-test-secret';
/** A request the old code left hanging fails the test instead of wedging it. */
const WITHIN_MS = 15_000;

let root: string;
let store: string;
let uploads: string;
let outside: string;
let engine: AsyncEngine;
let app: ReturnType<typeof buildApp>;
let base: string;

async function post(path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(WITHIN_MS),
  });
  return { status: res.status, json: await res.json() };
}

const complete = (model: string) =>
  post('/v1/completions', { model, prompt: 'The quick brown fox', max_tokens: 3, temperature: 0 });

async function models(): Promise<{ id: string; warnings?: string[]; error?: string }[]> {
  return (await (await fetch(`${base}/v1/models`)).json()).data;
}

async function adapter(dir: string, config?: (c: Record<string, unknown>) => void) {
  await mkdir(dir, { recursive: true });
  await writeDemoAdapter(dir, SPEC, 7000);
  if (config) {
    const file = join(dir, 'adapter_config.json');
    const c = JSON.parse(await readFile(file, 'utf8'));
    config(c);
    await writeFile(file, JSON.stringify(c));
  }
}

/** The message is a clean 400 that names no server path and quotes no secret. */
function assertClean400(r: { status: number; json: { error?: { message: string; code: string } } }, code: string) {
  assert.equal(r.status, 400, JSON.stringify(r.json));
  const { message } = r.json.error!;
  assert.equal(r.json.error!.code, code, message);
  for (const leak of [root, SECRET, 'root:x']) assert.ok(!message.includes(leak), `message shows ${leak}: ${message}`);
  return message;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-hardening-'));
  const demo = await ensureDemo(join(root, 'cache'));
  store = join(root, 'store');
  uploads = join(root, 'uploads');
  outside = join(root, 'outside');
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, 'passwd'), `${SECRET}\n`);
  await adapter(join(outside, 'real'));

  await adapter(join(store, 'good'));
  await adapter(join(store, 'good-2'));
  await adapter(join(store, 'fifo'));
  await unlink(join(store, 'fifo', 'adapter_model.safetensors'));
  execFileSync('mkfifo', [join(store, 'fifo', 'adapter_model.safetensors')]);
  await adapter(join(store, 'leak'));
  await unlink(join(store, 'leak', 'adapter_model.safetensors'));
  await symlink(join(outside, 'real', 'adapter_model.safetensors'), join(store, 'leak', 'adapter_model.safetensors'));
  await adapter(join(store, 'nan'));
  const weights = join(store, 'nan', 'adapter_model.safetensors');
  const bytes = await readFile(weights);
  bytes.writeFloatLE(Number.NaN, bytes.length - 4);
  await writeFile(weights, bytes);
  await adapter(join(store, 'huge-alpha'), (c) => {
    c.lora_alpha = 1e300;
  });
  await adapter(join(store, 'warned'), (c) => {
    c.fan_in_fan_out = true;
    c.rank_pattern = { 'no.such.module': 2 };
  });

  await adapter(join(uploads, 'secret-config'));
  await unlink(join(uploads, 'secret-config', 'adapter_config.json'));
  await symlink(join(outside, 'passwd'), join(uploads, 'secret-config', 'adapter_config.json'));
  await adapter(join(uploads, 'huge-alpha'), (c) => {
    c.lora_alpha = 1e300;
  });

  // An admin upload whose weights link to a shared file elsewhere in the same allowed root.
  await adapter(join(uploads, 'shared-blobs'));
  await adapter(join(uploads, 'linked'));
  await unlink(join(uploads, 'linked', 'adapter_model.safetensors'));
  await symlink(
    join(uploads, 'shared-blobs', 'adapter_model.safetensors'),
    join(uploads, 'linked', 'adapter_model.safetensors'),
  );

  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: [], loraDir: store, kvCacheTokens: 2048 });
  app = testApp(engine, await loadTextCodec(demo.modelDir), { admin: { allowedRoots: [store, uploads] } });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app?.close();
  await engine?.close();
  await rm(root, { recursive: true, force: true });
});

describe('bad adapters fail closed on a live server', () => {
  test('FIFO weights: the request fails at once with a 400, and later cold loads still work', async () => {
    const message = assertClean400(await complete('fifo'), 'ADAPTER_WEIGHTS_INVALID');
    assert.match(message, /adapter 'fifo': adapter_model\.safetensors: is a named pipe \(FIFO\), not a regular file/);
    assert.equal((await complete('good')).status, 200);
    assert.equal((await complete('good-2')).status, 200, 'a cold load after the FIFO one');
  });

  test('weights symlinked out of the store are refused (400), never served', async () => {
    const message = assertClean400(await complete('leak'), 'ADAPTER_FILE_OUTSIDE');
    assert.match(message, /adapter 'leak': adapter_model\.safetensors: resolves outside the adapter store/);
  });

  test('NaN weights: 400 at load naming the tensor', async () => {
    const message = assertClean400(await complete('nan'), 'ADAPTER_WEIGHTS_INVALID');
    assert.match(message, /tensor '.*lora_B\.weight': holds NaN/);
    assert.equal((await complete('good')).status, 200, 'other adapters unharmed');
  });

  test('lora_alpha 1e300 in the store: 400 for its own requests only', async () => {
    const message = assertClean400(await complete('huge-alpha'), 'ADAPTER_INVALID_CONFIG');
    assert.match(message, /adapter 'huge-alpha': adapter_config\.json: lora_alpha: 1e\+300/);
    assert.equal((await complete('good')).status, 200);
  });

  test('admin load of lora_alpha 1e300: 400, and nothing is registered', async () => {
    const r = await post('/v1/load_lora_adapter', { lora_name: 'alpha', lora_path: join(uploads, 'huge-alpha') });
    assertClean400(r, 'ADAPTER_INVALID_CONFIG');
    assert.ok(!(await models()).some((m) => m.id === 'alpha'));
  });

  test('admin load of a config symlinked to a secret outside the root: 400 without its content or path', async () => {
    const r = await post('/v1/load_lora_adapter', {
      lora_name: 'sneaky',
      lora_path: join(uploads, 'secret-config'),
    });
    const message = assertClean400(r, 'ADAPTER_FILE_OUTSIDE');
    assert.match(message, /adapter 'sneaky': adapter_config\.json: resolves outside/);
  });

  test('admin load: a file may link elsewhere inside its allowed root (not outside it)', async () => {
    const r = await fetch(`${base}/v1/load_lora_adapter`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ lora_name: 'linked', lora_path: join(uploads, 'linked') }),
    });
    assert.equal(r.status, 200, await r.text());
    assert.equal((await complete('linked')).status, 200);
  });

  test('/v1/models lists load warnings for the adapter', async () => {
    assert.equal((await complete('warned')).status, 200);
    const warned = (await models()).find((m) => m.id === 'warned')!;
    assert.equal(warned.warnings?.length, 2, JSON.stringify(warned));
    assert.match(warned.warnings![0], /fan_in_fan_out is true/);
    assert.match(warned.warnings![1], /rank_pattern key "no\.such\.module" matches no targeted module/);
    for (const w of warned.warnings!) assert.ok(!w.includes(root), w);
    assert.deepEqual((await models()).find((m) => m.id === 'good')!.warnings, []);
  });
});
