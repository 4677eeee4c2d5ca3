/** Adapter selection (round-robin, random, Zipf) and arrival schedules (Poisson, constant), all seeded. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createModelSelector, parseSelectionStrategy, zipfWeights } from '../../src/bench/adapter-selection.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { arrivalOffsets, gapSampler } from '../../src/bench/schedule.ts';

const MODELS = ['a', 'b', 'c', 'd'];

function counts(pick: () => string, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const m = pick();
    out[m] = (out[m] ?? 0) + 1;
  }
  return out;
}

describe('model selection', () => {
  test('round-robin cycles through the list in order', () => {
    const pick = createModelSelector('round_robin', MODELS, new BenchRandom(1));
    assert.deepEqual(
      Array.from({ length: 9 }, () => pick()),
      ['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd', 'a'],
    );
  });

  test('random is uniform and the same for the same seed', () => {
    const n = 20000;
    const c = counts(createModelSelector('random', MODELS, new BenchRandom(7)), n);
    for (const m of MODELS) assert.ok(Math.abs(c[m] / n - 0.25) < 0.015, `${m}: ${c[m]}`);
    const a = createModelSelector('random', MODELS, new BenchRandom(42));
    const b = createModelSelector('random', MODELS, new BenchRandom(42));
    assert.deepEqual(
      Array.from({ length: 50 }, () => a()),
      Array.from({ length: 50 }, () => b()),
    );
  });

  test('zipf weights are ∝ 1/i^α and sum to 1', () => {
    const w = zipfWeights(4, 1);
    const h = 1 + 1 / 2 + 1 / 3 + 1 / 4;
    w.forEach((x, i) => {
      assert.ok(Math.abs(x - 1 / (i + 1) / h) < 1e-12);
    });
    assert.ok(Math.abs(zipfWeights(10, 1.5).reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.deepEqual(
      zipfWeights(3, 0.000001).map((x) => x.toFixed(3)),
      ['0.333', '0.333', '0.333'],
    );
  });

  test('zipf draws follow the weights: the first adapter is the most popular', () => {
    const n = 40000;
    const alpha = 1.2;
    const c = counts(createModelSelector('zipf', MODELS, new BenchRandom(3), alpha), n);
    const w = zipfWeights(4, alpha);
    MODELS.forEach((m, i) => {
      const expected = w[i] * n;
      const sigma = Math.sqrt(n * w[i] * (1 - w[i]));
      assert.ok(Math.abs(c[m] - expected) < 4 * sigma, `${m}: ${c[m]} vs ${expected.toFixed(0)}`);
    });
    assert.ok(c.a > c.b && c.b > c.c && c.c > c.d);
  });

  test("AIPerf's spellings are accepted; others are rejected", () => {
    assert.equal(parseSelectionStrategy('round-robin'), 'round_robin');
    assert.equal(parseSelectionStrategy('zipf'), 'zipf');
    assert.throws(() => parseSelectionStrategy('weighted'), /round_robin, random, zipf/);
  });
});

describe('arrival schedules', () => {
  test('constant: evenly spaced at 1/rate, first at 0', () => {
    const offsets = arrivalOffsets(5, gapSampler('constant', 4, new BenchRandom(0)));
    assert.deepEqual(offsets, [0, 0.25, 0.5, 0.75, 1]);
  });

  test('poisson: exponential gaps with mean 1/rate and coefficient of variation 1', () => {
    const rate = 5;
    const next = gapSampler('poisson', rate, new BenchRandom(11));
    const gaps = Array.from({ length: 20000 }, () => next());
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const std = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
    assert.ok(Math.abs(mean - 1 / rate) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(std / mean - 1) < 0.05, `cv ${std / mean}`);
    assert.ok(gaps.every((g) => g >= 0));
    // Counts in unit windows are Poisson(rate): variance ≈ mean.
    const offsets = arrivalOffsets(20000, gapSampler('poisson', rate, new BenchRandom(12)));
    const windows = new Map<number, number>();
    for (const t of offsets) windows.set(Math.floor(t), (windows.get(Math.floor(t)) ?? 0) + 1);
    const perWindow = [...windows.values()].slice(0, -1);
    const m = perWindow.reduce((a, b) => a + b, 0) / perWindow.length;
    const v = perWindow.reduce((a, x) => a + (x - m) ** 2, 0) / perWindow.length;
    assert.ok(Math.abs(m - rate) < 0.2 && Math.abs(v / m - 1) < 0.15, `mean ${m} var ${v}`);
  });

  test('a rate must be positive', () => {
    assert.throws(() => gapSampler('poisson', 0, new BenchRandom(0)), /> 0/);
  });
});
