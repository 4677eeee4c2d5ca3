import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IncrementalDetokenizer, type TokenDecoder } from '../../src/tokenizer/detokenizer.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { QWEN_DIR } from './qwen-files.ts';

const qwen = await Tokenizer.fromDir(QWEN_DIR);

function stream(decoder: TokenDecoder, ids: number[], options = {}): string[] {
  const detok = new IncrementalDetokenizer(decoder, options);
  const pieces = ids.map((id) => detok.push(id));
  pieces.push(detok.finish());
  assert.equal(detok.text, pieces.join(''));
  return pieces;
}

/** SentencePiece-like: "▁" is a space, but a sequence's first token loses its leading space. */
const sentencePiece: TokenDecoder = {
  decode(ids) {
    const vocab = ['▁Hello', '▁world', '!', '▁new', 'line'];
    return ids
      .map((id) => vocab[id])
      .join('')
      .replaceAll('▁', ' ')
      .replace(/^ /, '');
  },
};

describe('IncrementalDetokenizer', () => {
  test('an emoji split over three byte-level tokens comes out whole, once complete', () => {
    // " 🦙" is tokens 11162 (" " + 2 bytes), 99, 247 in Qwen2.5.
    const pieces = stream(qwen, [37523, 11162, 99, 247, 2997]);
    assert.deepEqual(pieces, ['emoji', '', '', ' 🦙', ' family', '']);
  });

  test('streamed text equals the full decode, with no replacement characters, for mixed scripts', () => {
    const texts = [
      'emoji 🦙🔥👍🏽 family 👨‍👩‍👧',
      '日本語のテキストと中文混合',
      'naïve café — “quotes”',
      'Ünïcödé ÄÖÜ ß',
    ];
    for (const text of texts) {
      const ids = qwen.encode(text);
      const pieces = stream(qwen, ids);
      assert.equal(pieces.join(''), text);
      for (const piece of pieces) assert.ok(!piece.includes('\uFFFD'), `piece ${JSON.stringify(piece)} of ${text}`);
    }
  });

  test('a character cut off at the end is flushed by finish() as the full decode shows it', () => {
    const ids = qwen.encode('ok 🦙').slice(0, -1);
    const detok = new IncrementalDetokenizer(qwen);
    const streamed = detok.pushAll(ids);
    assert.ok(!streamed.includes('\uFFFD'));
    assert.equal(streamed + detok.finish(), qwen.decode(ids));
    assert.equal(detok.finish(), '');
  });

  test('the prompt gives context and is not repeated', () => {
    const prompt = qwen.encode('<|im_start|>assistant\n');
    const answer = qwen.encode('Sure — 好的!');
    const pieces = stream(qwen, answer, { promptIds: prompt });
    assert.equal(pieces.join(''), 'Sure — 好的!');
  });

  test('special tokens are kept, or skipped on request', () => {
    const ids = qwen.encode('hi<|im_end|>');
    assert.equal(stream(qwen, ids).join(''), 'hi<|im_end|>');
    assert.equal(stream(qwen, ids, { skipSpecialTokens: true }).join(''), 'hi');
  });

  test('a tokenizer that decodes a token differently at the start keeps its spaces', () => {
    // Decoding token by token would give "Hello" + "world" + ...: the window keeps the leading spaces.
    assert.deepEqual(stream(sentencePiece, [0, 1, 2, 3, 4]), ['Hello', ' world', '!', ' new', 'line', '']);
    assert.deepEqual(stream(sentencePiece, [1, 2], { promptIds: [0] }), [' world', '!', '']);
  });
});
