/**
 * A NeMo .nemo adapter served over the OpenAI API: a real loopback server over the demo model, its adapter
 * store (--lora-dir) holding a PEFT adapter and the same factors as a canonical NeMo .nemo, written as NeMo
 * lays it out (nemo-writer.ts). /v1/models lists the .nemo folder, loads go through the loader thread, and the
 * official client gets the same greedy text from both, alone and concurrently; a .nemo whose pickle names
 * another global answers 400 with the catalogue's error and the other adapters keep serving.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { ensureDemo, writeDemoAdapter } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import type { ModuleKind } from '../../src/model/modules.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { testApp } from '../server/loopback.ts';
import { peftToCanonicalNemo, tar, zip } from './nemo-writer.ts';

const ALL: ModuleKind[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const RANK = 8;
const ALPHA = 16;
const PROMPTS = ['The quick brown fox', 'Once upon a time', 'In a hole in the ground'];

let root: string;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let client: OpenAI;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-nemo-serving-'));
  const demo = await ensureDemo(join(root, 'cache'));
  const store = join(root, 'store');
  const peft = join(store, 'peft-all');
  await mkdir(peft, { recursive: true });
  await writeDemoAdapter(peft, { name: 'x', r: RANK, alpha: ALPHA, rslora: false, targets: ALL }, 4242);
  await mkdir(join(store, 'nemo-all'));
  const nemo = await peftToCanonicalNemo(join(peft, 'adapter_model.safetensors'), RANK, ALPHA);
  await writeFile(join(store, 'nemo-all', 'support.nemo'), nemo);
  // A .nemo whose weights pickle asks for os.system: refused by name when loaded.
  const evil = zip([['archive/data.pkl', Buffer.from('\x80\x02cposix\nsystem\n(X\x05\x00\x00\x00touchtR.', 'latin1')]]);
  await mkdir(join(store, 'nemo-evil'));
  await writeFile(
    join(store, 'nemo-evil', 'evil.nemo'),
    tar([
      ['./model_config.yaml', Buffer.from('peft:\n  peft_scheme: lora\n  lora_tuning:\n    adapter_dim: 8\n')],
      ['./model_weights.ckpt', evil],
    ]),
  );
  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: [], loraDir: store, kvCacheTokens: 8192 });
  app = testApp(engine, await loadTextCodec(demo.modelDir));
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await app.close();
  await engine.close();
  await rm(root, { recursive: true, force: true });
});

async function complete(model: string, prompt: string): Promise<string> {
  const res = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0 });
  return res.choices[0].text;
}

test('/v1/models lists the folders holding a .nemo beside the PEFT one', async () => {
  const ids = (await client.models.list()).data.map((m) => m.id);
  for (const id of ['base', 'peft-all', 'nemo-all', 'nemo-evil']) assert.ok(ids.includes(id), `${id} in ${ids}`);
});

test('the .nemo serves the same greedy text as its PEFT source, alone and concurrently', async () => {
  for (const prompt of PROMPTS) {
    const peft = await complete('peft-all', prompt);
    assert.equal(await complete('nemo-all', prompt), peft, prompt);
    assert.notEqual(await complete('base', prompt), peft, `${prompt}: the adapter changes the output`);
  }
  const both = await Promise.all(PROMPTS.flatMap((p) => [complete('nemo-all', p), complete('peft-all', p)]));
  for (let i = 0; i < both.length; i += 2) assert.equal(both[i], both[i + 1]);
  const listed = (await client.models.list()).data.find((m) => m.id === 'nemo-all') as unknown as { rank?: number };
  assert.equal(listed.rank, RANK);
});

test('a .nemo whose pickle names os.system answers 400 naming it; the others keep serving', async () => {
  await assert.rejects(complete('nemo-evil', PROMPTS[0]), (e: unknown) => {
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 400);
    assert.match(e.message, /'posix\.system'/);
    assert.ok(!e.message.includes(root), 'no server path in the message');
    return true;
  });
  assert.equal(await complete('nemo-all', PROMPTS[1]), await complete('peft-all', PROMPTS[1]));
});
