/**
 * An adapter that ships its own tokenizer serves its requests with it, on a real loopback server: prompts
 * (completions and chat, with its own chat template), streamed text, stop strings, logprobs' token strings,
 * its eos ending generation, /tokenize and /detokenize naming it; the base and an adapter without one keep
 * the base's tokenizer. Broken tokenizer files fail only that adapter's requests (a 400 naming it and the
 * file, no server path); a new version (rescan) gets its new tokenizer, and removing the files brings back the
 * base's. The per-version cache is bounded (RequestTokenizers, on a fake context).
 *
 * Token ids are checked against transformers (test/fixtures/adapter-tokenizer, oracle/adapter_tokenizer.py):
 * the server's base tokenizer is the fixture's base (400 tokens); the demo model has 151665 rows, so the
 * adapter's added tokens (ids 400–407) are rows the model has, as Qwen's spare rows or Llama 3's reserved ones.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureDemo, writeDemoAdapter } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import type { ServerContext } from '../../src/server/context.ts';
import { RequestTokenizers } from '../../src/server/request-tokenizers.ts';
import { type TextCodec, textCodec } from '../../src/tokenizer/text-codec.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { tinyTokenizerJson } from '../tokenizer/tiny-tokenizer.ts';
import { testApp } from './loopback.ts';

const FIXTURE =
  process.env.LORAPLEX_ADAPTER_TOKENIZER_FIXTURES_DIR ??
  join(import.meta.dirname, '..', 'fixtures', 'adapter-tokenizer');
const DEMO_VOCAB = 151665;

interface Side {
  encode: number[][];
  chat_ids: number[];
  eos_token_id: number;
  added: Record<string, number>;
}
let expected: { texts: string[]; messages: { role: string; content: string }[]; base: Side; adapter: Side };
let root: string;
let store: string;
let codec: TextCodec;
let engine: AsyncEngine;
let app: ReturnType<typeof testApp>;
let address: string;

async function writeAdapter(name: string, tokenizer: 'fixture' | 'none', seed: number): Promise<string> {
  const dir = join(store, name);
  await mkdir(dir, { recursive: true });
  await writeDemoAdapter(dir, { name, r: 4, alpha: 8, rslora: false, targets: ['q_proj', 'v_proj'] }, seed);
  if (tokenizer === 'fixture') await cp(join(FIXTURE, 'adapter'), dir, { recursive: true });
  return dir;
}

async function post(path: string, body: unknown) {
  const res = await fetch(`${address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies of several shapes
  return { status: res.status, json: (await res.json()) as any };
}

const tokenize = (model: string, fields: Record<string, unknown>) => post('/tokenize', { model, ...fields });

before(async () => {
  expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8'));
  root = await mkdtemp(join(tmpdir(), 'loraplex-adapter-tok-server-'));
  const demo = await ensureDemo(join(root, 'cache'));
  store = join(root, 'store');
  await writeAdapter('sql', 'fixture', 1);
  await writeAdapter('plain', 'none', 2);
  await writeAdapter('swap', 'fixture', 3);
  await writeFile(join(await writeAdapter('broken', 'none', 4), 'tokenizer.json'), '{"model": ');
  const toobig = await writeAdapter('toobig', 'fixture', 5);
  const json = JSON.parse(await readFile(join(toobig, 'tokenizer.json'), 'utf8'));
  json.added_tokens.push({ ...json.added_tokens.at(-1), id: DEMO_VOCAB, content: '<|one-too-far|>' });
  await writeFile(join(toobig, 'tokenizer.json'), JSON.stringify(json));
  const other = await writeAdapter('other', 'none', 7);
  await writeFile(join(other, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  const linked = await writeAdapter('linked', 'none', 6);
  await mkdir(join(root, 'outside'));
  await cp(join(FIXTURE, 'adapter', 'tokenizer.json'), join(root, 'outside', 'tokenizer.json'));
  await symlink(join(root, 'outside', 'tokenizer.json'), join(linked, 'tokenizer.json'));

  engine = await AsyncEngine.start({ modelDir: demo.modelDir, adapters: [], loraDir: store, kvCacheTokens: 4096 });
  assert.equal(engine.info.vocabSize, DEMO_VOCAB);
  codec = textCodec(await Tokenizer.fromDir(join(FIXTURE, 'base')));
  app = testApp(engine, codec, { admin: { allowedRoots: [store] } });
  address = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app?.close();
  await engine?.close();
  await rm(root, { recursive: true, force: true });
});

describe('an adapter serves its own tokenizer', () => {
  test("/tokenize: the adapter's ids (as transformers), the base's for the base and an adapter without one", async () => {
    for (const [i, prompt] of expected.texts.entries()) {
      assert.deepEqual((await tokenize('sql', { prompt })).json.tokens, expected.adapter.encode[i], prompt);
      assert.deepEqual((await tokenize('base', { prompt })).json.tokens, expected.base.encode[i], prompt);
      assert.deepEqual((await tokenize('plain', { prompt })).json.tokens, expected.base.encode[i], prompt);
    }
    const messages = expected.messages;
    assert.deepEqual((await tokenize('sql', { messages })).json.tokens, expected.adapter.chat_ids);
    assert.deepEqual((await tokenize('base', { messages })).json.tokens, expected.base.chat_ids);
    const strs = (await tokenize('sql', { prompt: expected.texts[1], return_token_strs: true })).json.token_strs;
    assert.equal(strs[0], '<sql>');
    assert.equal(strs.at(-1), '</sql>');
  });

  test('/tokenize of a large prompt (on the tokenizer thread) gives the inline ids', async () => {
    const unit = '<sql>SELECT name FROM users;</sql> loraplex ';
    const big = unit.repeat(400); // > 8 KiB: tokenized on the adapter tokenizer's own thread
    const local = await tokenize('sql', { prompt: unit });
    const res = await tokenize('sql', { prompt: big });
    assert.equal(res.status, 200);
    assert.equal(res.json.count, local.json.count * 400);
    assert.deepEqual(res.json.tokens.slice(0, local.json.count), local.json.tokens);
    // /tokenize's other settings go to the thread too: a large chat without the generation prompt.
    const messages = [{ role: 'user', content: big }];
    const withPrompt = await tokenize('sql', { messages });
    const without = await tokenize('sql', { messages, add_generation_prompt: false });
    const assistant = expected.adapter.added['<|assistant|>'];
    assert.equal(withPrompt.json.tokens.at(-2), assistant);
    assert.deepEqual(without.json.tokens, withPrompt.json.tokens.slice(0, -2), 'the same ids but the prompt');
  });

  test('/detokenize with model naming the adapter decodes its added tokens', async () => {
    const ids = expected.adapter.encode[1];
    assert.equal((await post('/detokenize', { model: 'sql', tokens: ids })).json.prompt, expected.texts[1]);
    const base = await post('/detokenize', { model: 'base', tokens: ids });
    assert.notEqual(base.json.prompt, expected.texts[1]);
  });

  test("completions: the prompt's ids, echoed logprobs' token strings and generated text are the adapter's", async () => {
    const prompt = expected.texts[1];
    const closing = expected.adapter.added['</sql>'];
    const body = { prompt, max_tokens: 2, temperature: 0, echo: true, logprobs: 0, logit_bias: { [closing]: 100 } };
    const sql = await post('/v1/completions', { model: 'sql', ...body });
    assert.equal(sql.status, 200, JSON.stringify(sql.json));
    assert.equal(sql.json.usage.prompt_tokens, expected.adapter.encode[1].length);
    assert.equal(sql.json.choices[0].text, `${prompt}</sql></sql>`);
    assert.equal(sql.json.choices[0].logprobs.tokens[0], '<sql>');
    const base = await post('/v1/completions', { model: 'base', ...body });
    assert.equal(base.json.usage.prompt_tokens, expected.base.encode[1].length);
    assert.equal(base.json.choices[0].logprobs.tokens[0], '<');
  });

  test('streamed text and stop strings run over the adapter tokenizer text', async () => {
    const open = expected.adapter.added['<sql>'];
    const res = await fetch(`${address}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'sql',
        prompt: 'Hello',
        max_tokens: 6,
        temperature: 0,
        stream: true,
        stop: ['l><s'],
        logit_bias: { [open]: 100 },
      }),
    });
    assert.equal(res.status, 200);
    const events = (await res.text())
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)));
    const text = events.map((e) => e.choices[0]?.text ?? '').join('');
    assert.equal(text, '<sq', 'the stop string matched across two <sql> tokens');
    assert.equal(events.at(-1).choices[0].finish_reason, 'stop');
  });

  test("chat: its chat template's ids, and its own eos ends generation (not under ignore_eos)", async () => {
    const eos = expected.adapter.eos_token_id;
    const body = { messages: expected.messages, max_tokens: 3, temperature: 0, logit_bias: { [eos]: 100 } };
    const sql = await post('/v1/chat/completions', { model: 'sql', ...body });
    assert.equal(sql.status, 200, JSON.stringify(sql.json));
    assert.equal(sql.json.usage.prompt_tokens, expected.adapter.chat_ids.length);
    assert.equal(sql.json.usage.completion_tokens, 1);
    assert.equal(sql.json.choices[0].finish_reason, 'stop');
    assert.equal(sql.json.choices[0].message.content, '');
    const ignoring = await post('/v1/chat/completions', { model: 'sql', ...body, ignore_eos: true });
    assert.equal(ignoring.json.usage.completion_tokens, 3);
    const base = await post('/v1/chat/completions', { model: 'base', ...body });
    assert.equal(base.json.usage.prompt_tokens, expected.base.chat_ids.length);
    assert.equal(base.json.usage.completion_tokens, 3, "the adapter's eos is an ordinary token for the base");
    assert.equal(base.json.choices[0].finish_reason, 'length');
  });
});

describe('broken adapter tokenizers fail only their adapter', () => {
  const cases: [string, RegExp][] = [
    ['broken', /^adapter 'broken': tokenizer\.json: is not valid JSON/],
    [
      'toobig',
      /^adapter 'toobig': tokenizer\.json: has token ids up to 151665, but the base model has 151665 token rows/,
    ],
    ['linked', /^adapter 'linked': tokenizer\.json: resolves outside the adapter store/],
    ['other', /^adapter 'other': tokenizer\.json: its vocabulary is not the base model's: 400 of the base's 400/],
  ];
  test('each is a 400 naming the adapter and the file, with no server path', async () => {
    for (const [name, pattern] of cases) {
      for (const res of [
        await tokenize(name, { prompt: 'hi' }),
        await post('/v1/chat/completions', { model: name, messages: expected.messages, max_tokens: 1 }),
        await post('/detokenize', { model: name, tokens: [1] }),
      ]) {
        assert.equal(res.status, 400, name);
        assert.match(res.json.error.message, pattern, name);
        assert.ok(!res.json.error.message.includes(root), `${name}: no server path`);
      }
    }
  });

  test('the base and the other adapters are served meanwhile', async () => {
    const [bad, good, base] = await Promise.all([
      tokenize('broken', { prompt: expected.texts[1] }),
      post('/v1/completions', { model: 'sql', prompt: expected.texts[1], max_tokens: 1 }),
      tokenize('base', { prompt: expected.texts[1] }),
    ]);
    assert.equal(bad.status, 400);
    assert.equal(good.status, 200);
    assert.equal(good.json.usage.prompt_tokens, expected.adapter.encode[1].length);
    assert.deepEqual(base.json.tokens, expected.base.encode[1]);
  });
});

describe('server paths stay on the server', () => {
  test('/v1/models and the dashboard state name no adapter directory', async () => {
    await tokenize('sql', { prompt: 'hi' });
    for (const path of ['/v1/models', '/ui/api/state']) {
      const res = await fetch(`${address}${path}`);
      if (res.status === 404) continue; // no dashboard in this app
      const text = await res.text();
      assert.ok(text.includes('sql'), path);
      assert.ok(!text.includes(root), `${path} shows no server path`);
    }
  });
});

describe('a new version of the adapter gets its new tokenizer', () => {
  test('a changed chat template, then no tokenizer at all (the base one again), after store rescans', async () => {
    const messages = expected.messages;
    assert.deepEqual((await tokenize('swap', { messages })).json.tokens, expected.adapter.chat_ids);
    await writeFile(join(store, 'swap', 'chat_template.jinja'), '{% for m in messages %}{{ m.content }}{% endfor %}');
    assert.equal((await post('/v1/rescan_lora_adapters', {})).status, 200);
    const plainText = messages.map((m) => m.content).join('');
    assert.deepEqual(
      (await tokenize('swap', { messages })).json.tokens,
      (await tokenize('sql', { prompt: plainText })).json.tokens,
    );
    await rm(join(store, 'swap', 'tokenizer.json'));
    assert.equal((await post('/v1/rescan_lora_adapters', {})).status, 200);
    assert.deepEqual((await tokenize('swap', { messages })).json.tokens, expected.base.chat_ids);
  });
});

describe('RequestTokenizers: one tokenizer per adapter version, bounded, dropped with the version', () => {
  test('at most `max` kept (least recently used dropped); versions the engine no longer lists dropped', async () => {
    const dirs = Array.from({ length: 4 }, (_, i) => join(root, 'cache-test', `a${i}`));
    for (const dir of dirs) await cp(join(FIXTURE, 'adapter'), dir, { recursive: true });
    const listing = (version: number) =>
      dirs.map((dir, i) => ({ name: `a${i}`, version, files: { dir, root: join(root, 'cache-test') } }));
    const fakeEngine = { adapters: listing(1), info: { vocabSize: DEMO_VOCAB, maxModelLen: 256 } };
    const ctx = { codec, engine: fakeEngine } as unknown as ServerContext;
    const tokenizers = new RequestTokenizers(ctx, 2);
    const a0 = await tokenizers.forModel('a0');
    assert.equal(a0.adapter, 'a0');
    assert.equal(await tokenizers.forModel('a0'), a0, 'one load per version');
    assert.equal((await tokenizers.forModel(null)).adapter, null);
    await tokenizers.forModel('a1');
    await tokenizers.forModel('a0'); // a0 most recent: a1 goes next
    await tokenizers.forModel('a2');
    assert.equal(tokenizers.size, 2);
    assert.equal(await tokenizers.forModel('a0'), a0, 'the most recently used is kept');
    const [one, two] = await Promise.all([tokenizers.forModel('a3'), tokenizers.forModel('a3')]);
    assert.equal(one, two, 'concurrent requests share one load');
    fakeEngine.adapters = listing(2);
    const next = await tokenizers.forModel('a0');
    assert.notEqual(next, a0, 'a new version is read again');
    assert.equal(tokenizers.size, 1, 'version 1 entries are gone');
    await tokenizers.close();
  });

  test("a server-side failure (the base's files gone meanwhile) is a 500 and is tried again; a bad file is kept", async () => {
    const baseCopy = join(root, 'base-copy');
    await cp(join(FIXTURE, 'base'), baseCopy, { recursive: true });
    const movable = textCodec(await Tokenizer.fromDir(baseCopy));
    const adapterDir = join(root, 'retry', 'a');
    await cp(join(FIXTURE, 'adapter'), adapterDir, { recursive: true });
    const engine = {
      adapters: [{ name: 'a', version: 1, files: { dir: adapterDir } }],
      info: { vocabSize: DEMO_VOCAB, maxModelLen: 256 },
    };
    const tokenizers = new RequestTokenizers({ codec: movable, engine } as unknown as ServerContext);
    await rm(baseCopy, { recursive: true });
    const failed = await tokenizers.forModel('a').then(
      () => assert.fail('the base vocabulary is gone'),
      (e) => e,
    );
    assert.equal(failed.status, 500);
    assert.match(failed.message, /^adapter 'a': its tokenizer could not be built/);
    assert.ok(!failed.message.includes(root), 'no server path');
    assert.equal(tokenizers.size, 0, 'not kept');
    await cp(join(FIXTURE, 'base'), baseCopy, { recursive: true });
    assert.equal((await tokenizers.forModel('a')).adapter, 'a', 'the next request builds it');
    await tokenizers.close();
  });
});
