/**
 * A request's combination against PEFT: add_weighted_adapter(combination_type="cat") of the tiny qwen2
 * adapters (oracle/compose_check.py → test/fixtures/compose) gives the prompt logits and greedy tokens the
 * engine serves for the same `lora` entries, alone and all in one mixed batch with a plain adapter and the base.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, type GenerationRequest, LLMEngine } from '../../src/engine/llm-engine.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

const root = join(import.meta.dirname, '..', '..');
// CI points this at a live oracle run (oracle/compose_check.py OUT) instead of the committed files.
const expectedRoot = process.env.LORAPLEX_COMPOSE_FIXTURES_DIR ?? join(root, 'test', 'fixtures', 'compose');
const LOGIT_TOLERANCE = 1e-3;

interface ComposeCase {
  id: string;
  lora: { name: string; scale: number }[];
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
}

test('qwen2: combinations serve PEFT add_weighted_adapter(cat) logits and greedy tokens, alone and mixed', async () => {
  const dir = join(root, 'test', 'fixtures', 'tiny', 'qwen2');
  const loaded = await loadModelDir(join(dir, 'model'));
  const expected = JSON.parse(readFileSync(join(expectedRoot, 'qwen2', 'expected.json'), 'utf8'));
  const logits = await SafetensorsFile.open(join(expectedRoot, 'qwen2', 'logits.safetensors'));
  const cases: ComposeCase[] = expected.cases;
  const engine = new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend: createBackend('native'),
    kvCacheTokens: 4096,
  });
  for (const name of new Set(cases.flatMap((c) => c.lora.map((p) => p.name)))) {
    const adapter = await loadPeftAdapter(join(dir, 'adapters', name), loaded.config, { maxLoraRank: 64 });
    engine.addAdapter(name, packAdapter(adapter, loaded.config));
  }
  const partsOf = (c: ComposeCase) => c.lora.map((p) => ({ name: p.name, weight: p.scale }));
  const logitRequest = (c: ComposeCase): GenerationRequest => ({
    promptIds: c.prompt_ids,
    adapter: partsOf(c),
    params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true },
  });
  const greedyRequests = (c: ComposeCase): GenerationRequest[] =>
    c.greedy.map((g) => ({
      promptIds: g.prompt_ids,
      adapter: partsOf(c),
      params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
    }));
  const check = async (
    c: ComposeCase,
    [first, ...rest]: { promptLogits: Float32Array | null; outputIds: number[] }[],
    where: string,
  ) => {
    const want = (await logits.readF32(c.logits_key)).data;
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(first.promptLogits![i] - want[i]));
    assert.ok(diff <= LOGIT_TOLERANCE, `${c.id} ${where}: max |Δlogit| ${diff}`);
    for (const [i, g] of c.greedy.entries())
      assert.deepEqual(rest[i].outputIds, g.tokens, `${c.id} ${where}: greedy ${i}`);
  };

  for (const c of cases) await check(c, engine.generate([logitRequest(c), ...greedyRequests(c)]), 'alone');

  const plain = { promptIds: cases[0].prompt_ids, adapter: cases[0].lora[0].name, params: { maxTokens: 4 } };
  const base = { promptIds: cases[0].prompt_ids, adapter: null, params: { maxTokens: 4 } };
  const batch = [plain, base, ...cases.flatMap((c) => [logitRequest(c), ...greedyRequests(c)])];
  const out = engine.generate(batch);
  let at = 2;
  for (const c of cases) {
    const n = 1 + c.greedy.length;
    await check(c, out.slice(at, at + n), 'in a mixed batch');
    at += n;
  }
});
