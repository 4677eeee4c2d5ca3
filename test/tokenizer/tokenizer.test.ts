import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ChatTemplateError } from '../../src/tokenizer/chat-template.ts';
import { textCodec } from '../../src/tokenizer/text-codec.ts';
import { Tokenizer, TokenizerError } from '../../src/tokenizer/tokenizer.ts';
import { QWEN_DIR } from './qwen-files.ts';
import { tinyTokenizerJson } from './tiny-tokenizer.ts';

const qwen = await Tokenizer.fromDir(QWEN_DIR, { modelConfig: { eosTokenIds: [151645] } });
const root = await mkdtemp(join(tmpdir(), 'loraplex-tokenizer-'));
after(() => rm(root, { recursive: true, force: true }));

// Expected ids: transformers 5.24 AutoTokenizer / tokenizers 0.23 on the same files
// (tok.encode(s, add_special_tokens=True), equal to Tokenizer.from_file(...).encode(s).ids).
const EXPECTED: [string, number[]][] = [
  ['Hello, world!', [9707, 11, 1879, 0]],
  ['  leading spaces and\ttabs\nnewlines\n\n', [220, 6388, 12621, 323, 3244, 3435, 198, 931, 7969, 271]],
  ['naïve café — “quotes”', [3376, 37572, 586, 51950, 1959, 1036, 53282, 854]],
  ['日本語のテキストと中文混合', [101059, 102819, 15767, 56833, 61803, 70534, 19182, 104811, 105063]],
  [
    'emoji 🦙🔥👍🏽 family 👨‍👩‍👧',
    [37523, 11162, 99, 247, 144670, 144349, 145375, 2997, 61804, 101, 378, 235, 145233, 378, 235, 145665],
  ],
  ['<|im_start|>user\nhi<|im_end|>', [151644, 872, 198, 6023, 151645]],
  ['numbers 1234567 3.14159', [37378, 220, 16, 17, 18, 19, 20, 21, 22, 220, 18, 13, 16, 19, 16, 20, 24]],
  ['Ünïcödé ÄÖÜ ß', [52491, 77, 37572, 66, 2956, 128505, 48686, 63361, 52491, 1683, 253]],
  ['def f(x):\n    return x**2  # comment', [750, 282, 2075, 982, 262, 470, 856, 334, 17, 220, 671, 3980]],
];

describe('Tokenizer (Qwen2.5 files)', () => {
  test('encode gives the same ids as Hugging Face tokenizers, unicode, emoji and CJK included', () => {
    for (const [text, ids] of EXPECTED) assert.deepEqual(qwen.encode(text), ids, JSON.stringify(text));
  });

  test('decode round-trips and can skip special tokens', () => {
    for (const [text, ids] of EXPECTED) assert.equal(qwen.decode(ids), text);
    assert.equal(qwen.decode([151644, 6023, 151645], { skipSpecialTokens: true }), 'hi');
    // No clean-up of spaces before punctuation (transformers 5 skips it for BPE).
    assert.equal(qwen.decode(qwen.encode('a , b .')), 'a , b .');
  });

  test('special tokens from tokenizer_config.json; Qwen adds no BOS', () => {
    assert.equal(qwen.bosToken, null);
    assert.equal(qwen.bosTokenId, null);
    assert.equal(qwen.eosToken, '<|im_end|>');
    assert.equal(qwen.eosTokenId, 151645);
    assert.equal(qwen.padToken, '<|endoftext|>');
    assert.equal(qwen.padTokenId, 151643);
    assert.deepEqual(qwen.specialTokensMap, { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });
    assert.deepEqual(qwen.encode('hi', { addSpecialTokens: false }), qwen.encode('hi'));
    assert.equal(qwen.tokenToId('<|im_start|>'), 151644);
    assert.equal(qwen.idToToken(9707), 'Hello');
    assert.ok(qwen.isSpecial(151645));
    assert.ok(!qwen.isSpecial(9707));
    assert.equal(qwen.vocabSize, 151665);
  });

  test("eos ids: tokenizer's eos, then config.json's and generation_config.json's, without repeats", async () => {
    assert.deepEqual(qwen.eosTokenIds, [151645]);
    const dir = join(root, 'with-generation-config');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [5, 3] }));
    const tok = await Tokenizer.fromDir(dir, { modelConfig: { eosTokenIds: [5, 2] } });
    assert.deepEqual(tok.eosTokenIds, [5, 2, 3]);
    assert.equal(tok.eosTokenId, 5);
    assert.equal(tok.hasChatTemplate, false);
  });

  test('special tokens written as AddedToken objects; a BOS from the post-processor', async () => {
    const json = JSON.parse(await readFile(join(QWEN_DIR, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(await readFile(join(QWEN_DIR, 'tokenizer_config.json'), 'utf8'));
    const bos = { content: '<|endoftext|>', lstrip: false, normalized: false, rstrip: false, single_word: false };
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [151643], tokens: ['<|endoftext|>'] } },
    };
    const tok = new Tokenizer(
      { tokenizerJson: json, tokenizerConfig: { ...config, bos_token: { __type: 'AddedToken', ...bos } } },
      'test',
    );
    assert.equal(tok.bosToken, '<|endoftext|>');
    assert.equal(tok.bosTokenId, 151643);
    assert.deepEqual(tok.encode('Hello'), [151643, 9707]);
    assert.deepEqual(tok.encode('Hello', { addSpecialTokens: false }), [9707]);
  });

  test('applyChatTemplate + encode gives the ids of transformers apply_chat_template(tokenize=True)', () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi! 你好 🦙' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Again' },
    ];
    const prompt = qwen.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.deepEqual(
      qwen.encode(prompt, { addSpecialTokens: false }),
      [
        151644, 8948, 198, 2610, 525, 50537, 13, 151645, 198, 151644, 872, 198, 13048, 0, 220, 108386, 11162, 99, 247,
        151645, 198, 151644, 77091, 198, 9707, 13, 151645, 198, 151644, 872, 198, 30385, 151645, 198, 151644, 77091,
        198,
      ],
    );
  });

  test('textCodec: chat prompts with a generation prompt, output without special tokens', () => {
    const codec = textCodec(qwen);
    const ids = codec.encodeChat([{ role: 'user', content: 'Hi' }]);
    assert.deepEqual(ids.slice(-3), [151644, 77091, 198]); // <|im_start|>assistant\n
    assert.equal(codec.decode(qwen.encode('Hello<|im_end|>')), 'Hello');
    assert.deepEqual(codec.encode('Hello, world!'), [9707, 11, 1879, 0]);
  });

  test('chat_template.jinja wins over tokenizer_config.json; no template is a clear error', async () => {
    const dir = join(root, 'jinja-file');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', chat_template: 'config' }));
    const noTemplate = await Tokenizer.fromDir(dir);
    await writeFile(join(dir, 'chat_template.jinja'), '{{ bos_token }}{{ messages[0].content }}');
    const tok = await Tokenizer.fromDir(dir);
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'ab' }]), '<s>ab');
    assert.equal(noTemplate.applyChatTemplate([]), 'config');
    const bare = new Tokenizer({ tokenizerJson: tinyTokenizerJson() }, 'bare');
    assert.throws(
      () => bare.applyChatTemplate([]),
      (e: unknown) => e instanceof ChatTemplateError && e.code === 'chat_template_missing',
    );
  });

  test('missing tokenizer.json, a special token outside the vocabulary', async () => {
    await assert.rejects(Tokenizer.fromDir(join(root, 'nowhere')), (e: unknown) => {
      assert.ok(e instanceof TokenizerError);
      assert.equal(e.code, 'tokenizer_not_found');
      assert.match(e.message, /tokenizer\.json: missing/);
      return true;
    });
    assert.throws(
      () => new Tokenizer({ tokenizerJson: tinyTokenizerJson(), tokenizerConfig: { eos_token: '<|eot|>' } }, '/m'),
      (e: unknown) =>
        e instanceof TokenizerError && e.code === 'tokenizer_invalid' && e.message.includes('eos_token "<|eot|>"'),
    );
    const dir = join(root, 'bad-json');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), '{');
    await assert.rejects(
      Tokenizer.fromDir(dir),
      (e: unknown) => e instanceof TokenizerError && e.code === 'tokenizer_invalid',
    );
  });
});
