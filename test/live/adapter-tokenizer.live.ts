/**
 * An adapter tokenizer made from a real one (SmolLM2-135M-Instruct's 49k-token byte-level BPE): another chat
 * template, and `<gh_stars>` renamed `<|tool|>` at the same id (a model with no spare rows gets a new token
 * only so). Served as the server serves it (RequestTokenizers: built and checked on its thread, every prompt
 * encoded there, the HTTP thread's decoding copy without merges), its ids, chat ids and decodes equal
 * transformers' AutoTokenizer.from_pretrained(adapter_dir); the base's equal AutoTokenizer(base).
 *
 * Run: python oracle/adapter_tokenizer.py --real-base ~/.cache/loraplex/smollm2/model OUT
 *      LORAPLEX_ADAPTER_TOKENIZER_REAL_DIR=OUT node scripts/run-live.mjs adapter-tokenizer
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ServerContext } from '../../src/server/context.ts';
import { RequestTokenizers } from '../../src/server/request-tokenizers.ts';
import { textCodec } from '../../src/tokenizer/text-codec.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';

const dir = process.env.LORAPLEX_ADAPTER_TOKENIZER_REAL_DIR;
if (!dir)
  throw new Error('set LORAPLEX_ADAPTER_TOKENIZER_REAL_DIR to the output of oracle/adapter_tokenizer.py --real-base');

interface Side {
  vocab_size: number;
  eos_token_id: number;
  encode: number[][];
  decode: string[];
  chat_ids: number[];
  added: Record<string, number>;
}
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  texts: string[];
  messages: { role: string; content: string }[];
  base: Side;
  adapter: Side;
};

test("a real tokenizer's adapter copy (renamed special, own template) is served with transformers' ids", async () => {
  const base = await Tokenizer.fromDir(join(dir, 'base'));
  const codec = textCodec(base);
  expected.texts.forEach((text, i) => {
    assert.deepEqual(base.encode(text), expected.base.encode[i], `base: ${text}`);
    assert.equal(codec.decode(expected.base.encode[i]), expected.base.decode[i]);
  });
  assert.deepEqual(codec.encodeChat(expected.messages), expected.base.chat_ids);

  const engine = {
    adapters: [{ name: 'real', version: 1, files: { dir: join(dir, 'adapter') } }],
    info: { vocabSize: expected.base.vocab_size, maxModelLen: 8192 },
  };
  const tokenizers = new RequestTokenizers({ codec, engine } as unknown as ServerContext);
  try {
    const tk = await tokenizers.forModel('real');
    assert.equal(tk.adapter, 'real');
    assert.equal(tk.codec.tokenizer.tokenToId('<|tool|>'), expected.adapter.added['<|tool|>']);
    for (const [i, text] of expected.texts.entries()) {
      assert.deepEqual(await tk.prompts.completion(text, expected.base.vocab_size), expected.adapter.encode[i], text);
      assert.equal(tk.codec.decode(expected.adapter.encode[i]), expected.adapter.decode[i], text);
    }
    assert.deepEqual(await tk.prompts.chat(expected.messages), expected.adapter.chat_ids);
    assert.deepEqual(tk.stopIds, [], 'the same eos as the base');
    assert.notDeepEqual(expected.adapter.chat_ids, expected.base.chat_ids);
  } finally {
    await tokenizers.close();
  }
});
