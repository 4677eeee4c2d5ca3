import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadModelDir } from '../../src/model/model-dir.ts';

// The oracle's tiny models (npm run oracle:fixtures → test/fixtures/tiny/<case>/model), saved by transformers.
const root = process.env.LORAPLEX_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tiny');
const cases = existsSync(root)
  ? readdirSync(root)
      .sort()
      .filter((name) => existsSync(join(root, name, 'model', 'config.json')))
  : [];

describe('the oracle fixtures’ model folders load', () => {
  if (cases.length === 0) {
    test('no fixtures in test/fixtures/tiny', { skip: 'generate them with npm run oracle:fixtures' }, () => {});
  }
  for (const name of cases) {
    test(name, async () => {
      const dir = join(root, name, 'model');
      const { config, weights } = await loadModelDir(dir);
      assert.equal(weights.layers.length, config.numLayers);
      assert.equal(weights.embedding.rows, config.vocabSize);
      assert.equal(weights.lmHead === weights.embedding, config.tieWordEmbeddings);
      const expectedPath = join(root, name, 'expected.json');
      if (existsSync(expectedPath)) {
        const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
        if (expected.family) assert.equal(config.family, expected.family);
      }
    });
  }
});
