/**
 * Synthetic prompts hit their token length exactly with the real (Qwen2.5) tokenizer, and lengths drawn
 * from Normal(mean, stddev) have that mean and stddev; JSONL datasets are read and checked.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { parseDataset } from '../../src/bench/dataset.ts';
import { PromptSynthesizer, type TextTokenizer } from '../../src/bench/prompts.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { loadTextTokenizer } from '../../src/bench/tokenizer.ts';
import { syntheticPool, Workload } from '../../src/bench/workload.ts';

let tokenizer: TextTokenizer;

before(async () => {
  tokenizer = await loadTextTokenizer();
});

describe('synthetic prompts', () => {
  test('each prompt re-tokenizes to exactly the target length', () => {
    const synth = new PromptSynthesizer(tokenizer, new BenchRandom(5));
    for (const target of [1, 2, 7, 32, 128, 550, 1500]) {
      const p = synth.synthesize(target);
      assert.equal(p.tokens, target);
      assert.equal(tokenizer.count(p.text), target, `target ${target}: ${JSON.stringify(p.text.slice(0, 60))}`);
    }
  });

  test('lengths drawn with mean 200 and stddev 40 have that mean and stddev', () => {
    const synth = new PromptSynthesizer(tokenizer, new BenchRandom(9));
    const lengths = Array.from({ length: 300 }, () => synth.sample(200, 40)).map((p) => {
      assert.equal(tokenizer.count(p.text), p.tokens);
      return p.tokens;
    });
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    const std = Math.sqrt(lengths.reduce((a, x) => a + (x - mean) ** 2, 0) / lengths.length);
    assert.ok(Math.abs(mean - 200) < 7, `mean ${mean}`); // ~3 standard errors
    assert.ok(Math.abs(std - 40) < 5, `std ${std}`);
  });

  test('the same seed gives the same prompts; different seeds differ', () => {
    const a = new PromptSynthesizer(tokenizer, new BenchRandom(1)).synthesize(64).text;
    const b = new PromptSynthesizer(tokenizer, new BenchRandom(1)).synthesize(64).text;
    const c = new PromptSynthesizer(tokenizer, new BenchRandom(2)).synthesize(64).text;
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test('a workload cycles its pool, picks models, and draws max_tokens', () => {
    const pool = syntheticPool(new PromptSynthesizer(tokenizer, new BenchRandom(3)), { mean: 16, stddev: 0 }, 2);
    let i = 0;
    const w = new Workload(pool, () => ['x', 'y'][i++ % 2], { mean: 8, stddev: 0 }, new BenchRandom(4));
    const specs = [w.request(), w.request(), w.request()];
    assert.deepEqual(
      specs.map((s) => s.model),
      ['x', 'y', 'x'],
    );
    assert.equal(specs[2].prompt, specs[0].prompt);
    assert.ok(specs.every((s) => s.inputTokens === 16 && s.maxTokens === 8));
  });
});

describe('JSONL datasets', () => {
  test('text and messages rows, with optional model and max_tokens', () => {
    const rows = parseDataset(
      [
        '{"text": "Hello there"}',
        '',
        '{"messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}], "model": "a", "max_tokens": 5}',
        '{"text": "x", "output_length": 7}',
      ].join('\n'),
      tokenizer,
    );
    assert.equal(rows.length, 3);
    assert.deepEqual(rows[0].prompt, { text: 'Hello there' });
    assert.equal(rows[0].inputTokens, tokenizer.count('Hello there'));
    assert.equal(rows[1].model, 'a');
    assert.equal(rows[1].maxTokens, 5);
    assert.equal(rows[2].maxTokens, 7);
    const w = new Workload(rows, () => 'picked', null, new BenchRandom(0));
    assert.deepEqual(
      [w.request(), w.request(), w.request()].map((s) => [s.model, s.maxTokens]),
      [
        ['picked', null],
        ['a', 5],
        ['picked', 7],
      ],
    );
  });

  test('bad rows name their line', () => {
    assert.throws(() => parseDataset('{"text": "ok"}\n{"prompt": 1}', tokenizer, 'f.jsonl'), /f\.jsonl:2: expected/);
    assert.throws(() => parseDataset('not json', tokenizer, 'f.jsonl'), /f\.jsonl:1: not JSON/);
    assert.throws(() => parseDataset('{"text": "a", "max_tokens": 0}', tokenizer), /max_tokens/);
    assert.throws(() => parseDataset('\n\n', tokenizer, 'empty.jsonl'), /no request/);
  });
});
