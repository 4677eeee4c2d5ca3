/**
 * Reads the oracle's fixtures (oracle/tiny_fixtures.py → test/fixtures/tiny, or LORAPLEX_FIXTURES_DIR for a
 * live regeneration in CI) and builds engines for them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectionsInMemory } from '../../src/adapters/base-projections.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import type { Backend } from '../../src/backends/types.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, LLMEngine } from '../../src/engine/llm-engine.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

/** The model families the engine runs; fixture sets of other families are skipped (extend as families land). */
export const ENGINE_FAMILIES: readonly string[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3'];

export interface FixtureCase {
  id: string;
  adapter: string | null;
  /** Set on the "-lorabf16" cases: the adapter's A and B rounded to this dtype before computing in f32. */
  adapter_rounding?: 'bf16';
  prompt_ids: number[];
  greedy_tokens: number[];
  greedy_min_margin: number;
  logits_key: string;
  /** [greedy_tokens.length, vocab] f32: the logits that chose each greedy token (decode with KV cache). */
  step_logits_key: string;
}

export interface FixtureSet {
  name: string;
  dir: string;
  family: string;
  /** Cases computed from the adapter files as saved (float32 A and B), and the base model. */
  cases: FixtureCase[];
  /** Cases with `adapter_rounding`: not in `cases`; the --lora-dtype tests compare bf16 slots with them. */
  roundedCases: FixtureCase[];
  mixedBatches: string[][];
  logits: SafetensorsFile;
}

export function fixturesRoot(): string {
  return process.env.LORAPLEX_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tiny');
}

/** A skipped test that names a fixture set left out, so the skip shows in every test report. */
function reportSkipped(name: string, reason: string): void {
  test(`fixture set ${name}`, { skip: reason }, () => {});
}

/**
 * Every fixture set of a family in ENGINE_FAMILIES; the others are reported as skipped tests (by default)
 * through `onSkip`.
 */
export async function readFixtureSets(root = fixturesRoot(), onSkip = reportSkipped): Promise<FixtureSet[]> {
  if (!existsSync(root)) return [];
  const sets: FixtureSet[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    const expectedPath = join(dir, 'expected.json');
    if (!existsSync(expectedPath)) continue;
    const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
    if (!ENGINE_FAMILIES.includes(expected.family)) {
      onSkip(name, `family '${expected.family}' is not in ENGINE_FAMILIES yet (test/conformance/fixtures.ts)`);
      continue;
    }
    const cases: FixtureCase[] = expected.cases;
    sets.push({
      name,
      dir,
      family: expected.family,
      cases: cases.filter((c) => c.adapter_rounding === undefined),
      roundedCases: cases.filter((c) => c.adapter_rounding !== undefined),
      mixedBatches: expected.mixed_batches ?? [],
      logits: await SafetensorsFile.open(join(dir, 'logits.safetensors')),
    });
  }
  return sets;
}

/** Adapters of a PEFT type the engine does not serve yet (LoRA, DoRA and VeRA are served): their cases check the refusal. */
export function isUnsupportedAdapter(set: FixtureSet, name: string): boolean {
  const config = JSON.parse(readFileSync(join(set.dir, 'adapters', name, 'adapter_config.json'), 'utf8'));
  return config.peft_type !== 'LORA' && config.peft_type !== 'VERA';
}

export async function engineFor(
  set: FixtureSet,
  backend: Backend,
  overrides: Partial<EngineOptions> = {},
): Promise<LLMEngine> {
  const loaded = await loadModelDir(join(set.dir, 'model'));
  // LoRA slots in f32 unless asked: the cases without `adapter_rounding` are computed from f32 A and B
  // ('auto' would round them to bf16 for the bf16 checkpoint, which is what the "-lorabf16" cases pin).
  const options = { ...DEFAULT_ENGINE_OPTIONS, kvCacheTokens: 4096, loraDtype: 'f32' as const, backend, ...overrides };
  const engine = new LLMEngine(loaded, options);
  const adaptersDir = join(set.dir, 'adapters');
  const names = new Set(set.cases.map((c) => c.adapter).filter((a): a is string => a !== null));
  const baseWeights = projectionsInMemory(loaded.weights); // DoRA's norms
  for (const name of names) {
    if (isUnsupportedAdapter(set, name)) continue;
    const adapter = await loadPeftAdapter(join(adaptersDir, name), loaded.config, {
      maxLoraRank: 128,
      name,
      baseWeights,
    });
    engine.addAdapter(name, packAdapter(adapter, loaded.config));
  }
  return engine;
}
