/**
 * Conformance against transformers + PEFT on tiny random models of every family: logits at every prompt
 * position (max |Δ| ≤ 1e-3), 32 greedy tokens identical, and a sequence's results identical alone and in
 * mixed batches (bitwise: the kernels are batch-invariant), with and without chunked prefill.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';
import { engineFor, type FixtureCase, type FixtureSet, isUnsupportedAdapter, readFixtureSets } from './fixtures.ts';

const LOGIT_TOLERANCE = 1e-3;
const sets = await readFixtureSets();

test('oracle fixtures are present', () => {
  assert.ok(sets.length >= 3, `expected fixture sets for the three families, found ${sets.length}`);
  const families = new Set(sets.map((s) => s.family));
  for (const f of ['llama', 'mistral', 'qwen2']) assert.ok(families.has(f), `no fixture for ${f}`);
});

function request(c: FixtureCase) {
  return {
    promptIds: c.prompt_ids,
    adapter: c.adapter,
    params: { maxTokens: c.greedy_tokens.length, temperature: 0, ignoreEos: true, promptLogits: true },
  };
}

function supportedCases(set: FixtureSet): FixtureCase[] {
  return set.cases.filter((c) => c.adapter === null || !isUnsupportedAdapter(set, c.adapter));
}

for (const set of sets) {
  const refused = [...new Set(set.cases.map((c) => c.adapter))].filter(
    (a): a is string => a !== null && isUnsupportedAdapter(set, a),
  );
  for (const name of refused) {
    test(`${set.name}: the unsupported adapter '${name}' is refused, never served as the base`, async () => {
      const { config } = await loadModelDir(join(set.dir, 'model'));
      await assert.rejects(
        loadPeftAdapter(join(set.dir, 'adapters', name), config, { maxLoraRank: 128, name }),
        (e: unknown) => isLoraplexError(e, 'ADAPTER_UNSUPPORTED_FEATURE'),
      );
    });
  }
}

for (const backend of ['native', 'reference'] as const) {
  const engineBackend = createBackend(backend);
  for (const set of sets) {
    describe(`${backend}: ${set.name}`, async () => {
      const engine = await engineFor(set, engineBackend);
      const alone = new Map<string, { tokens: number[]; logits: Float32Array }>();

      test('each case alone matches the oracle (logits and greedy tokens)', async (t) => {
        let worst = 0;
        for (const c of supportedCases(set)) {
          const [seq] = engine.generate([request(c)]);
          const expected = (await set.logits.readF32(c.logits_key)).data;
          const diff = maxAbsDiff(seq.promptLogits!, expected);
          worst = Math.max(worst, diff);
          assert.ok(diff <= LOGIT_TOLERANCE, `${c.id}: max |Δlogit| ${diff} > ${LOGIT_TOLERANCE}`);
          assert.deepEqual(seq.outputIds, c.greedy_tokens, `${c.id}: greedy tokens differ from the oracle`);
          alone.set(c.id, { tokens: [...seq.outputIds], logits: seq.promptLogits! });
        }
        t.diagnostic(`worst |Δlogit| ${worst}`);
      });

      test('mixed batches give each sequence exactly its results alone', () => {
        const cases0 = supportedCases(set);
        const batches = [...set.mixedBatches, cases0.map((c) => c.id)]; // and everything at once
        for (const ids of batches) {
          const cases = ids.map((id) => cases0.find((c) => c.id === id)!);
          const seqs = engine.generate(cases.map(request));
          seqs.forEach((seq, i) => {
            const ref = alone.get(cases[i].id)!;
            assert.deepEqual(seq.outputIds, ref.tokens, `${cases[i].id}: tokens differ in a mixed batch`);
            assert.equal(
              maxAbsDiff(seq.promptLogits!, ref.logits),
              0,
              `${cases[i].id}: logits differ in a mixed batch`,
            );
          });
        }
      });

      test('chunked prefill (5-token budget) gives the same results', async () => {
        const chunked = await engineFor(set, engineBackend, { maxBatchTokens: 5 });
        const cases = supportedCases(set);
        const seqs = chunked.generate(cases.map(request));
        seqs.forEach((seq, i) => {
          const ref = alone.get(cases[i].id)!;
          assert.deepEqual(seq.outputIds, ref.tokens, `${cases[i].id}: tokens differ with chunked prefill`);
          assert.equal(maxAbsDiff(seq.promptLogits!, ref.logits), 0, `${cases[i].id}: logits differ when chunked`);
        });
      });

      after(() => alone.clear());
    });
  }
}
