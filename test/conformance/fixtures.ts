/**
 * Reads the oracle's fixtures (oracle/tiny_fixtures.py → test/fixtures/tiny, or LORAPLEX_FIXTURES_DIR for a
 * live regeneration in CI) and builds engines for them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import type { Backend } from '../../src/backends/types.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, LLMEngine } from '../../src/engine/llm-engine.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

export interface FixtureCase {
  id: string;
  adapter: string | null;
  prompt_ids: number[];
  greedy_tokens: number[];
  logits_key: string;
}

export interface FixtureSet {
  name: string;
  dir: string;
  family: string;
  cases: FixtureCase[];
  mixedBatches: string[][];
  logits: SafetensorsFile;
}

export function fixturesRoot(): string {
  return process.env.LORAPLEX_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tiny');
}

export async function readFixtureSets(root = fixturesRoot()): Promise<FixtureSet[]> {
  if (!existsSync(root)) return [];
  const sets: FixtureSet[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    const expectedPath = join(dir, 'expected.json');
    if (!existsSync(expectedPath)) continue;
    const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
    sets.push({
      name,
      dir,
      family: expected.family,
      cases: expected.cases,
      mixedBatches: expected.mixed_batches ?? [],
      logits: await SafetensorsFile.open(join(dir, 'logits.safetensors')),
    });
  }
  return sets;
}

/** Adapters the engine does not support yet (DoRA): their cases check the refusal instead. */
export function isUnsupportedAdapter(set: FixtureSet, name: string): boolean {
  const config = JSON.parse(readFileSync(join(set.dir, 'adapters', name, 'adapter_config.json'), 'utf8'));
  return config.use_dora === true;
}

export async function engineFor(
  set: FixtureSet,
  backend: Backend,
  overrides: Partial<EngineOptions> = {},
): Promise<LLMEngine> {
  const loaded = await loadModelDir(join(set.dir, 'model'));
  const engine = new LLMEngine(loaded, { ...DEFAULT_ENGINE_OPTIONS, kvCacheTokens: 4096, backend, ...overrides });
  const adaptersDir = join(set.dir, 'adapters');
  const names = new Set(set.cases.map((c) => c.adapter).filter((a): a is string => a !== null));
  for (const name of names) {
    if (isUnsupportedAdapter(set, name)) continue;
    const adapter = await loadPeftAdapter(join(adaptersDir, name), loaded.config, { maxLoraRank: 128, name });
    engine.addAdapter(name, packAdapter(adapter, loaded.config));
  }
  return engine;
}
