/**
 * An adapter's own tokenizer: the same ids as transformers' AutoTokenizer.from_pretrained(adapter_dir) (the
 * oracle fixture: test/fixtures/adapter-tokenizer, written by oracle/adapter_tokenizer.py), its chat template
 * and eos; refused when its ids pass the model's vocab_size or its vocabulary is another model's; its files
 * read only inside the adapter's root, size-capped, with messages naming the adapter and the file kind only.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readAdapterTokenizerTexts, TOKENIZER_FILE_LIMITS } from '../../src/server/adapter-tokenizer-files.ts';
import {
  adapterStopIds,
  baseFacts,
  buildAdapterTokenizer,
  decodingJson,
  decodingTokenizer,
  parseAdapterTokenizerFiles,
} from '../../src/tokenizer/adapter-tokenizer.ts';
import { textCodec } from '../../src/tokenizer/text-codec.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { tinyTokenizerJson } from './tiny-tokenizer.ts';

// CI points this at a live oracle run (oracle/adapter_tokenizer.py OUT) instead of the committed files.
const FIXTURE =
  process.env.LORAPLEX_ADAPTER_TOKENIZER_FIXTURES_DIR ??
  join(import.meta.dirname, '..', 'fixtures', 'adapter-tokenizer');

interface Side {
  vocab_size: number;
  eos_token: string;
  eos_token_id: number;
  encode: number[][];
  decode: string[];
  chat_text: string;
  chat_ids: number[];
  added: Record<string, number>;
}
interface Expected {
  texts: string[];
  messages: { role: string; content: string }[];
  base: Side;
  adapter: Side;
}

let expected: Expected;
let base: Tokenizer;
let work: string;

before(async () => {
  const { readFile } = await import('node:fs/promises');
  expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8'));
  base = await Tokenizer.fromDir(join(FIXTURE, 'base'));
  work = await mkdtemp(join(tmpdir(), 'loraplex-adapter-tok-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A copy of the fixture's adapter tokenizer in store/<name>, for tests that break it. */
async function adapterCopy(name: string): Promise<string> {
  const dir = join(work, 'store', name);
  await mkdir(dir, { recursive: true });
  await cp(join(FIXTURE, 'adapter'), dir, { recursive: true });
  return dir;
}

/** The files as the server reads them (text) and the adapter's thread parses them. */
async function readAdapterTokenizerFiles(name: string, dir: string, root?: string) {
  const texts = await readAdapterTokenizerTexts(name, dir, root);
  return texts === null ? null : parseAdapterTokenizerFiles(name, texts);
}

async function adapterTokenizer(dir = join(FIXTURE, 'adapter'), modelVocabSize = 4096) {
  const files = await readAdapterTokenizerFiles('sql', dir);
  assert.ok(files, 'the fixture ships tokenizer.json');
  return buildAdapterTokenizer('sql', files, baseFacts(base, modelVocabSize));
}

/** The error a promise or function throws (fails when none). */
async function errorOf(run: () => unknown): Promise<Error & { code?: string; status?: number }> {
  try {
    await run();
  } catch (e) {
    return e as Error & { code?: string; status?: number };
  }
  assert.fail('expected an error');
}

describe('adapter tokenizer: the same ids as transformers (oracle fixture)', () => {
  test('the base tokenizer encodes and decodes as AutoTokenizer(base)', () => {
    assert.equal(base.vocabSize, expected.base.vocab_size);
    expected.texts.forEach((text, i) => {
      assert.deepEqual(base.encode(text), expected.base.encode[i], text);
      assert.equal(base.decode(expected.base.encode[i], { skipSpecialTokens: true }), expected.base.decode[i]);
    });
    assert.deepEqual(textCodec(base).encodeChat(expected.messages), expected.base.chat_ids);
  });

  test("the adapter's tokenizer: added tokens (normal and special) at the ids transformers gave them", async () => {
    const tok = await adapterTokenizer();
    assert.equal(tok.vocabSize, expected.adapter.vocab_size);
    for (const [token, id] of Object.entries(expected.adapter.added)) assert.equal(tok.tokenToId(token), id, token);
    expected.texts.forEach((text, i) => {
      assert.deepEqual(tok.encode(text), expected.adapter.encode[i], text);
      assert.equal(tok.decode(expected.adapter.encode[i], { skipSpecialTokens: true }), expected.adapter.decode[i]);
    });
    assert.notDeepEqual(expected.adapter.encode[1], expected.base.encode[1], 'the fixture tells the two apart');
  });

  test('its own chat template and eos token', async () => {
    const tok = await adapterTokenizer();
    const codec = textCodec(tok);
    assert.equal(tok.applyChatTemplate(expected.messages, { addGenerationPrompt: true }), expected.adapter.chat_text);
    assert.deepEqual(codec.encodeChat(expected.messages), expected.adapter.chat_ids);
    assert.equal(tok.eosToken, expected.adapter.eos_token);
    assert.equal(tok.eosTokenId, expected.adapter.eos_token_id);
    assert.deepEqual(adapterStopIds(tok, base), [expected.adapter.eos_token_id], 'its eos stops its requests');
    assert.deepEqual(adapterStopIds(base, base), []);
  });
});

describe("adapter tokenizer: the HTTP thread's decoding-only copy", () => {
  test('decodes every fixture text and token as the full tokenizer does; encoding on it throws', async () => {
    const files = await readAdapterTokenizerFiles('sql', join(FIXTURE, 'adapter'));
    assert.ok(files);
    const full = await adapterTokenizer();
    const light = JSON.parse(decodingJson(files));
    assert.deepEqual(light.model.merges, [], 'the merges stay on the thread');
    const facts = baseFacts(base, 4096);
    const copy = decodingTokenizer('sql', { ...files, tokenizerJson: light }, facts);
    for (const ids of expected.adapter.encode) {
      for (const skip of [true, false]) {
        assert.equal(copy.decode(ids, { skipSpecialTokens: skip }), full.decode(ids, { skipSpecialTokens: skip }));
      }
    }
    for (let id = 0; id < full.vocabSize; id++) assert.equal(copy.decode([id]), full.decode([id]), `id ${id}`);
    assert.equal(copy.vocabSize, full.vocabSize);
    assert.deepEqual(copy.eosTokenIds, full.eosTokenIds);
    assert.throws(() => copy.encode(), /adapter 'sql': this copy only decodes/);
  });
});

describe('adapter tokenizer: checked against the base model', () => {
  test('ids up to vocab_size - 1 are served; one id past it is refused, naming the file', async () => {
    const size = expected.adapter.vocab_size;
    await adapterTokenizer(undefined, size);
    const err = await errorOf(() => adapterTokenizer(undefined, size - 1));
    assert.equal(err.code, 'ADAPTER_INVALID_CONFIG');
    assert.equal(err.status, 400);
    assert.match(err.message, /^adapter 'sql': tokenizer\.json: has token ids up to 407, but the base model has 407/);
    assert.match(err.message, /resized embedding and lm_head/);
  });

  test("another model's vocabulary is refused", async () => {
    const err = await errorOf(() =>
      buildAdapterTokenizer('sql', { tokenizerJson: tinyTokenizerJson() }, baseFacts(base, 4096)),
    );
    assert.match(err.message, /^adapter 'sql': tokenizer\.json: its vocabulary is not the base model's/);
  });

  test('a tokenizer the library cannot build, a bad special token, a broken template: each names its file', async () => {
    const json = structuredClone(await readJsonFile(join(FIXTURE, 'adapter', 'tokenizer.json')));
    const cases: [string, () => unknown, RegExp][] = [
      [
        'model',
        () =>
          buildAdapterTokenizer('sql', { tokenizerJson: { ...json, model: { type: 'Nope' } } }, baseFacts(base, 4096)),
        /^adapter 'sql': tokenizer\.json: is not a tokenizer the tokenizers library can load/,
      ],
      [
        'eos',
        () =>
          buildAdapterTokenizer(
            'sql',
            { tokenizerJson: json, tokenizerConfig: { eos_token: '<|secret-token|>' } },
            baseFacts(base, 4096),
          ),
        /^adapter 'sql': tokenizer_config\.json: eos_token: names a token/,
      ],
      [
        'template',
        () =>
          buildAdapterTokenizer(
            'sql',
            { tokenizerJson: json, chatTemplate: '{% for secret in %}' },
            baseFacts(base, 4096),
          ),
        /^adapter 'sql': chat_template\.jinja: chat_template: the chat template does not parse/,
      ],
    ];
    for (const [what, run, pattern] of cases) {
      const err = await errorOf(run);
      assert.match(err.message, pattern, what);
      assert.doesNotMatch(err.message, /secret|Nope/, `${what}: the file's contents stay out of the message`);
    }
  });
});

async function readJsonFile(path: string): Promise<Record<string, unknown>> {
  const { readFile } = await import('node:fs/promises');
  return JSON.parse(await readFile(path, 'utf8'));
}

describe('adapter tokenizer files: contained, capped, named by kind', () => {
  test('no tokenizer.json: null (the base tokenizer serves it)', async () => {
    const dir = join(work, 'store', 'plain');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer_config.json'), '{"chat_template": "x"}');
    assert.equal(await readAdapterTokenizerFiles('plain', dir, join(work, 'store')), null);
  });

  test("special_tokens_map.json fills in what tokenizer_config.json lacks; the config's own win", async () => {
    const dir = await adapterCopy('map');
    await writeFile(join(dir, 'special_tokens_map.json'), '{"eos_token": "<|im_end|>", "bos_token": "<|im_start|>"}');
    const files = await readAdapterTokenizerFiles('map', dir, join(work, 'store'));
    assert.equal(files?.tokenizerConfig?.eos_token, '<|end|>');
    assert.equal(files?.tokenizerConfig?.bos_token, null, "the config's explicit null is kept");
    await writeFile(join(dir, 'tokenizer_config.json'), '{}');
    const filled = await readAdapterTokenizerFiles('map', dir, join(work, 'store'));
    assert.equal(filled?.tokenizerConfig?.eos_token, '<|im_end|>');
    assert.equal(filled?.tokenizerConfig?.bos_token, '<|im_start|>');
  });

  test('invalid JSON, a non-object, a symlink out of the store, a directory, an oversized file', async () => {
    const store = join(work, 'store');
    const outside = join(work, 'outside-secret');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'tokenizer.json'), '{}');
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      ['json', (d) => writeFile(join(d, 'tokenizer.json'), '{"secret": '), /tokenizer\.json: is not valid JSON$/],
      [
        'array',
        (d) => writeFile(join(d, 'tokenizer_config.json'), '[1]'),
        /tokenizer_config\.json: is not a JSON object$/,
      ],
      [
        'link',
        async (d) => {
          await rm(join(d, 'tokenizer.json'));
          await symlink(join(outside, 'tokenizer.json'), join(d, 'tokenizer.json'));
        },
        /tokenizer\.json: resolves outside the adapter store/,
      ],
      [
        'dir',
        async (d) => {
          await rm(join(d, 'chat_template.jinja'));
          await mkdir(join(d, 'chat_template.jinja'));
        },
        /chat_template\.jinja: is a directory, not a regular file/,
      ],
      [
        'big',
        async (d) => {
          await writeFile(join(d, 'special_tokens_map.json'), '');
          await truncate(join(d, 'special_tokens_map.json'), TOKENIZER_FILE_LIMITS['special_tokens_map.json'] + 1);
        },
        /special_tokens_map\.json: is 1048577 bytes; tokenizer files are read up to 1048576 bytes/,
      ],
    ];
    for (const [name, breakIt, pattern] of cases) {
      const dir = await adapterCopy(name);
      await breakIt(dir);
      const err = await errorOf(() => readAdapterTokenizerFiles(name, dir, store));
      assert.match(err.message, new RegExp(`^adapter '${name}': `), name);
      assert.match(err.message, pattern, name);
      assert.equal(err.status, 400, name);
      assert.ok(!err.message.includes(work), `${name}: no server path in the message`);
      assert.doesNotMatch(err.message, /secret/, `${name}: no contents in the message`);
    }
  });

  test('an adapter directory that is itself a link out of the store is refused', async () => {
    const link = join(work, 'store', 'escape');
    await symlink(join(FIXTURE, 'adapter'), link);
    const err = await errorOf(() => readAdapterTokenizerFiles('escape', link, join(work, 'store')));
    assert.equal(err.code, 'ADAPTER_FILE_OUTSIDE');
    assert.ok(!err.message.includes(work));
  });
});
