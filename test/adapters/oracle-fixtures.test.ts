// Adapters saved by real PEFT (oracle/tiny_fixtures.py) load against their model's config.json.
// Skipped while the fixtures have not been generated (LORAPLEX_FIXTURES_DIR points elsewhere, as in test/conformance).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { parseModelConfig } from '../../src/model/config-parse.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';
import { ENGINE_FAMILIES } from '../conformance/fixtures.ts';

const ROOT = process.env.LORAPLEX_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tiny');

function subdirs(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()
    : [];
}

const cases = subdirs(ROOT).filter(
  (c) => existsSync(join(ROOT, c, 'model', 'config.json')) && subdirs(join(ROOT, c, 'adapters')).length > 0,
);

// Sets of families the engine does not run yet (ENGINE_FAMILIES) are left out below.
const engineCases = cases.filter((c) => {
  const expectedPath = join(ROOT, c, 'expected.json');
  return !existsSync(expectedPath) || ENGINE_FAMILIES.includes(JSON.parse(readFileSync(expectedPath, 'utf8')).family);
});

test('the fixture root, when present, holds cases with model/config.json and adapters/', () => {
  for (const c of subdirs(ROOT)) {
    if (subdirs(join(ROOT, c, 'adapters')).length > 0)
      assert.ok(cases.includes(c), `${c} has adapters but no model/config.json`);
  }
});

describe('PEFT-saved fixture adapters', { skip: cases.length === 0 ? `no fixtures under ${ROOT}` : false }, () => {
  for (const c of engineCases) {
    const configPath = join(ROOT, c, 'model', 'config.json');
    for (const name of subdirs(join(ROOT, c, 'adapters'))) {
      const dir = join(ROOT, c, 'adapters', name);
      test(`${c}/${name}`, async () => {
        const base = parseModelConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
        const raw = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
        const load = () => loadPeftAdapter(dir, base, { maxLoraRank: 64, name });
        if (raw.use_dora) {
          await assert.rejects(
            load,
            (e) => isLoraplexError(e, 'ADAPTER_UNSUPPORTED_FEATURE') && /use_dora/.test(e.message),
          );
          return;
        }
        const adapter = await load();
        const file = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
        if (raw.peft_type === 'VERA') {
          // one module per lambda_d, materialized as LoRA factors of rank r with scale 1
          const lambdas = [...file.tensors.keys()].filter((k) => k.endsWith('.vera_lambda_d'));
          assert.equal(adapter.modules.size, lambdas.length);
          for (const m of adapter.modules.values()) assert.ok(m.rank === raw.r && m.scale === 1);
          return;
        }
        const factorsA = [...file.tensors.keys()].filter((k) => k.includes('.lora_A.'));
        assert.equal(adapter.modules.size, factorsA.length);
        for (const m of adapter.modules.values()) {
          const alphaOver = raw.use_rslora ? Math.sqrt(m.rank) : m.rank;
          assert.ok(m.scale > 0 && Number.isFinite(m.scale));
          if (Object.keys(raw.alpha_pattern ?? {}).length === 0) assert.equal(m.scale, raw.lora_alpha / alphaOver);
        }
        const packed = packAdapter(adapter, base);
        assert.equal(
          packed.rank.reduce((s, r) => s + (r > 0 ? 1 : 0), 0),
          adapter.modules.size,
        );
      });
    }
  }
});
