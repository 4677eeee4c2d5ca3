import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { ENGINE_FAMILIES } from '../conformance/fixtures.ts';

// The oracle's tiny models (npm run oracle:fixtures → test/fixtures/tiny/<case>/model), saved by transformers.
const root = process.env.LORAPLEX_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tiny');
const cases = existsSync(root)
  ? readdirSync(root)
      .sort()
      .filter((name) => existsSync(join(root, name, 'model', 'config.json')))
  : [];

// Every set oracle/families.py writes, with its family and checkpoint dtype.
const EXPECTED_SETS: Record<string, { family: string; dtype: string }> = {
  'llama-tied': { family: 'llama', dtype: 'float32' },
  'llama3-rope': { family: 'llama', dtype: 'float32' },
  mistral: { family: 'mistral', dtype: 'float32' },
  'mistral-sliding': { family: 'mistral', dtype: 'float32' },
  qwen2: { family: 'qwen2', dtype: 'float32' },
  qwen3: { family: 'qwen3', dtype: 'float32' },
  gemma2: { family: 'gemma2', dtype: 'float32' },
  gemma3: { family: 'gemma3', dtype: 'float32' },
  phi3: { family: 'phi3', dtype: 'float32' },
  'llama-bf16': { family: 'llama', dtype: 'bfloat16' },
  'llama-f16': { family: 'llama', dtype: 'float16' },
};
const PROMPTS = ['p1', 'p5', 'p13', 'p20'];

function readExpected(name: string) {
  return JSON.parse(readFileSync(join(root, name, 'expected.json'), 'utf8'));
}

describe('the oracle fixtures’ model folders load', () => {
  if (cases.length === 0) {
    test('no fixtures in test/fixtures/tiny', { skip: 'generate them with npm run oracle:fixtures' }, () => {});
  }
  for (const name of cases) {
    const expectedPath = join(root, name, 'expected.json');
    const family = existsSync(expectedPath) ? readExpected(name).family : undefined;
    const skip = family && !ENGINE_FAMILIES.includes(family) ? `the engine does not load ${family} yet` : false;
    test(name, { skip }, async () => {
      const dir = join(root, name, 'model');
      const { config, weights } = await loadModelDir(dir);
      assert.equal(weights.layers.length, config.numLayers);
      assert.equal(weights.embedding.rows, config.vocabSize);
      assert.equal(weights.lmHead === weights.embedding, config.tieWordEmbeddings);
      if (family) assert.equal(config.family, family);
    });
  }
});

describe('the oracle fixtures hold every set and every case', { skip: cases.length === 0 }, () => {
  test('one set per family and precision', () => {
    assert.deepEqual(cases, Object.keys(EXPECTED_SETS).sort());
  });
  for (const [name, want] of Object.entries(EXPECTED_SETS)) {
    test(`${name}: ${want.family}, ${want.dtype}, every prompt × (base + each adapter), step logits on each`, async () => {
      const expected = readExpected(name);
      assert.equal(expected.family, want.family);
      assert.equal(expected.checkpoint_dtype, want.dtype);
      const adapters: string[] = Object.keys(expected.adapters);
      const rounded = name.endsWith('-bf16') || name.endsWith('-f16');
      const ids = PROMPTS.flatMap((p) => [
        `${p}-base`,
        ...adapters.map((a) => `${p}-${a}`),
        ...(rounded ? adapters.map((a) => `${p}-${a}-lorabf16`) : []),
      ]);
      assert.deepEqual(expected.cases.map((c: { id: string }) => c.id).sort(), ids.sort());
      const logits = await SafetensorsFile.open(join(root, name, 'logits.safetensors'));
      const vocab = JSON.parse(readFileSync(join(root, name, 'model', 'config.json'), 'utf8')).vocab_size;
      for (const c of expected.cases) {
        assert.equal(c.adapter_rounding, c.id.endsWith('-lorabf16') ? 'bf16' : undefined, c.id);
        assert.ok(c.greedy_min_margin >= expected.greedy.min_margin, `${c.id}: greedy margin too small`);
        const steps = logits.tensors.get(c.step_logits_key);
        assert.deepEqual(steps?.shape, [c.greedy_tokens.length, vocab], `${c.id}: step logits`);
        assert.deepEqual(logits.tensors.get(c.logits_key)?.shape, [c.prompt_ids.length, vocab], c.id);
      }
    });
  }
});
