/**
 * Logit bias and the presence, frequency and repetition penalties: the row changes exactly as an explicit
 * reference computes it here (vLLM's order and formulas, written out per token), and in the engine every
 * penalized token is the argmax of that reference applied to the raw row that chose it — alone, and next to
 * sequences that ask for nothing (whose tokens stay those they get alone).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildEngine } from '../../src/engine/build-engine.ts';
import { processesLogits, processLogits } from '../../src/engine/logits-processing.ts';
import { DEFAULT_SAMPLING, type SamplingParams, samplingParams } from '../../src/engine/sampling-params.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
const PROMPT = [5, 17, 33, 2, 61, 8];

type Knobs = Pick<SamplingParams, 'presencePenalty' | 'frequencyPenalty' | 'repetitionPenalty' | 'logitBias'>;

/** The reference: token by token over the whole vocabulary, in f64, as vLLM's sampler orders the steps. */
function reference(raw: ArrayLike<number>, k: Knobs, prompt: number[], output: number[]): number[] {
  return Array.from(raw, (x, v) => {
    for (const [id, b] of k.logitBias ?? []) if (id === v) x += b;
    if (prompt.includes(v) || output.includes(v)) x = x > 0 ? x / k.repetitionPenalty : x * k.repetitionPenalty;
    const count = output.filter((t) => t === v).length;
    return x - k.frequencyPenalty * count - (count > 0 ? k.presencePenalty : 0);
  });
}

const argmax = (row: number[]) => row.reduce((best, x, i) => (x > row[best] ? i : best), 0);

const KNOBS: Knobs = { presencePenalty: 0.7, frequencyPenalty: 0.9, repetitionPenalty: 1.6, logitBias: [[40, 3.5]] };

describe('logits processing', () => {
  test('changes the row as the reference does; nothing to do means no processing', () => {
    const raw = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * 4);
    const output = [9, 9, 40, 3, 9];
    const row = raw.slice();
    processLogits(row, KNOBS, PROMPT, output);
    const expected = reference(raw, KNOBS, PROMPT, output);
    row.forEach((x, v) => {
      assert.ok(Math.abs(x - expected[v]) < 1e-5, `token ${v}: ${x} vs ${expected[v]}`);
    });
    assert.equal(processesLogits(DEFAULT_SAMPLING), false);
    assert.equal(processesLogits({ ...DEFAULT_SAMPLING, repetitionPenalty: 1.1 }), true);
    assert.equal(processesLogits({ ...DEFAULT_SAMPLING, logitBias: [[1, 0.5]] }), true);
  });

  test('out-of-range values are refused', () => {
    assert.throws(() => samplingParams({ presencePenalty: 2.5 }), /presence_penalty/);
    assert.throws(() => samplingParams({ frequencyPenalty: Number.NaN }), /frequency_penalty/);
    assert.throws(() => samplingParams({ repetitionPenalty: 0 }), /repetition_penalty/);
    assert.throws(() => samplingParams({ logitBias: [[3, 101]] }), /logit_bias/);
  });

  test('greedy: each token is the argmax of the reference over its raw row, in a batch with plain sequences', async () => {
    const e = (await buildEngine({ modelDir: join(fixture, 'model'), adapters: [] })).engine;
    const base = { maxTokens: 10, temperature: 0, ignoreEos: true, stepLogits: true };
    const [plainAlone] = e.generate([{ promptIds: PROMPT, adapter: null, params: base }]);
    const [penalized, plain] = e.generate([
      { promptIds: PROMPT, adapter: null, params: { ...base, ...KNOBS } },
      { promptIds: PROMPT, adapter: null, params: base },
    ]);
    assert.deepEqual(plain.outputIds, plainAlone.outputIds);
    assert.notDeepEqual(penalized.outputIds, plainAlone.outputIds, 'the penalties change this output');
    penalized.outputIds.forEach((token, i) => {
      const expected = reference(penalized.stepLogits[i], KNOBS, PROMPT, penalized.outputIds.slice(0, i));
      assert.equal(token, argmax(expected), `step ${i}`);
    });
  });

  test('sampling goes through the same sampler: a +100 bias forces its token at any temperature', async () => {
    const e = (await buildEngine({ modelDir: join(fixture, 'model'), adapters: [] })).engine;
    const [forced, free] = e.generate([
      {
        promptIds: PROMPT,
        adapter: null,
        params: { maxTokens: 8, temperature: 1.5, seed: 7, ignoreEos: true, logitBias: [[40, 100]] },
      },
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 8, temperature: 1.5, seed: 7, ignoreEos: true } },
    ]);
    assert.deepEqual(forced.outputIds, Array(8).fill(40));
    const [again] = e.generate([
      { promptIds: PROMPT, adapter: null, params: { maxTokens: 8, temperature: 1.5, seed: 7, ignoreEos: true } },
    ]);
    assert.deepEqual(free.outputIds, again.outputIds, 'the seeded plain row is unaffected by its processed neighbour');
  });
});
