/**
 * Sampling and log-softmax: greedy ties, temperature, top-k, top-p, the inverse-CDF distribution, native
 * choosing exactly the reference's token, log-softmax accuracy and argument validation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeSamplingKernels } from '../../src/kernels/native/sampling.ts';
import { referenceSamplingKernels } from '../../src/kernels/reference/sampling.ts';
import type { SamplingRow } from '../../src/kernels/types.ts';
import { availableIsas, type Rng, restoreDefaults, rng } from './implementations.ts';

const isas = availableIsas();
after(restoreDefaults);

type SamplingKernels = typeof nativeSamplingKernels;
const implementations: [string, SamplingKernels][] = [
  ['reference', referenceSamplingKernels],
  ['native', nativeSamplingKernels],
];

function sampleOne(k: SamplingKernels, logits: number[] | Float32Array, row: Partial<SamplingRow>): number {
  const out = new Int32Array(1);
  k.sample(Float32Array.from(logits), logits.length, [{ temperature: 1, topK: 0, topP: 1, uniform: 0.5, ...row }], out);
  return out[0];
}

function argmax(logits: Float32Array, offset: number, vocab: number): number {
  let best = 0;
  for (let v = 1; v < vocab; v++) if (logits[offset + v] > logits[offset + best]) best = v;
  return best;
}

/** Logits like a language model's: a few strong tokens over a long tail; optionally quantized to force ties. */
function lmLogits(r: Rng, vocab: number, scale: number, ties: boolean): Float32Array {
  const logits = new Float32Array(vocab);
  for (let v = 0; v < vocab; v++) {
    const x = r.normal() * scale;
    logits[v] = ties ? Math.round(x * 2) / 2 : x;
  }
  for (let i = 0; i < 3; i++) logits[r.int(0, vocab - 1)] += scale * 4;
  return logits;
}

describe('sample: greedy and its limits', () => {
  for (const [name, k] of implementations) {
    test(`${name}: temperature 0 takes the argmax, lowest index on ties, whatever topK/topP/uniform say`, () => {
      assert.equal(sampleOne(k, [1, 5, 3, 5, 5], { temperature: 0 }), 1);
      assert.equal(sampleOne(k, [1, 5, 3, 5, 6], { temperature: 0, topK: 2, topP: 0.1, uniform: 0.99 }), 4);
      assert.equal(sampleOne(k, [Number.NaN, 2, Number.NaN, 2], { temperature: 0 }), 1);
      assert.equal(sampleOne(k, [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY], { temperature: 0 }), 0);
      assert.equal(sampleOne(k, [7], { temperature: 0.7, uniform: 0.9 }), 0);
    });

    test(`${name}: topK = 1 and a tiny topP are greedy; topK ≥ vocab is off`, () => {
      const r = rng(21);
      for (let i = 0; i < 60; i++) {
        const vocab = r.int(2, 3000);
        const logits = lmLogits(r, vocab, 3, i % 2 === 0);
        const greedy = argmax(logits, 0, vocab);
        const uniform = r.next();
        const temperature = 0.2 + r.next() * 2;
        assert.equal(sampleOne(k, logits, { temperature, topK: 1, uniform }), greedy);
        assert.equal(sampleOne(k, logits, { temperature, topP: 1e-12, uniform }), greedy);
        const off = sampleOne(k, logits, { temperature, topK: 0, uniform });
        assert.equal(sampleOne(k, logits, { temperature, topK: vocab, uniform }), off);
        assert.equal(sampleOne(k, logits, { temperature, topK: vocab + 5, uniform }), off);
      }
    });

    test(`${name}: ties in probability are walked lower index first; uniform 0 picks the most likely`, () => {
      // Three equal tokens: thirds of [0, 1) go to tokens 0, 2, 3 in that order.
      const logits = [1, -50, 1, 1];
      assert.equal(sampleOne(k, logits, { uniform: 0.1 }), 0);
      assert.equal(sampleOne(k, logits, { uniform: 0.5 }), 2);
      assert.equal(sampleOne(k, logits, { uniform: 0.9 }), 3);
      assert.equal(sampleOne(k, [0, 3, 1], { uniform: 0 }), 1);
      assert.equal(sampleOne(k, [0, 3, 1], { uniform: 0.999999999999, topK: 2 }), 2);
    });

    test(`${name}: NaN logits never get mass; a +inf logit takes all of it`, () => {
      for (const uniform of [0, 0.3, 0.99]) {
        assert.notEqual(sampleOne(k, [Number.NaN, 0, 0], { uniform }), 0);
        assert.equal(sampleOne(k, [0, Number.POSITIVE_INFINITY, 5], { uniform }), 1);
      }
    });
  }
});

/**
 * The distribution the spec defines, computed independently: logits / T → top-k → softmax → smallest
 * prefix (by probability) with mass ≥ topP → renormalised.
 */
function expectedDistribution(logits: number[], row: SamplingRow): number[] {
  const order = logits.map((_, v) => v).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = row.topK > 0 ? order.slice(0, row.topK) : order;
  const weights = kept.map((v) => Math.exp((logits[v] - logits[kept[0]]) / row.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let mass = 0;
  let n = 0;
  while (n < kept.length && mass < row.topP * total) mass += weights[n++];
  const probs = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) probs[kept[i]] = weights[i] / mass;
  return probs;
}

describe('sample: the inverse CDF draws the specified distribution', () => {
  const logits = [2, 1, 0.5, 0, -1, 3, 2.5, -3];
  const cases: SamplingRow[] = [
    { temperature: 1, topK: 0, topP: 1, uniform: 0 },
    { temperature: 0.8, topK: 4, topP: 1, uniform: 0 },
    { temperature: 1.3, topK: 0, topP: 0.8, uniform: 0 },
    { temperature: 0.7, topK: 6, topP: 0.9, uniform: 0 },
  ];
  for (const [name, k] of implementations) {
    for (const row of cases) {
      test(`${name}: T=${row.temperature} topK=${row.topK} topP=${row.topP}`, () => {
        const probs = expectedDistribution(logits, row);
        const n = 20000;
        // Stratified uniforms: each token's share is its probability within 1/n.
        const strat = drawCounts(k, logits, row, n, (i) => (i + 0.5) / n);
        probs.forEach((p, v) => {
          assert.ok(Math.abs(strat[v] / n - p) <= 1.5 / n, `token ${v}: ${strat[v] / n} vs ${p}`);
        });
        // Random uniforms: a loose chi-square bound over the tokens that can be drawn.
        const r = rng(99);
        const counts = drawCounts(k, logits, row, n, () => r.next());
        let chi2 = 0;
        let df = -1;
        probs.forEach((p, v) => {
          if (p === 0) {
            assert.equal(counts[v], 0, `token ${v} is outside the kept set`);
            return;
          }
          chi2 += (counts[v] - n * p) ** 2 / (n * p);
          df++;
        });
        assert.ok(chi2 < df + 8 * Math.sqrt(2 * Math.max(df, 1)) + 10, `chi² = ${chi2} with ${df} degrees of freedom`);
      });
    }
  }
});

function drawCounts(k: SamplingKernels, logits: number[], row: SamplingRow, n: number, uniform: (i: number) => number) {
  const vocab = logits.length;
  const batch = 500;
  const flat = new Float32Array(batch * vocab);
  for (let i = 0; i < batch; i++) flat.set(logits, i * vocab);
  const counts = new Array(vocab).fill(0);
  const out = new Int32Array(batch);
  for (let start = 0; start < n; start += batch) {
    const rows = Array.from({ length: batch }, (_, i) => ({ ...row, uniform: uniform(start + i) }));
    k.sample(flat, vocab, rows, out);
    for (const token of out) counts[token]++;
  }
  return counts;
}

/** Under every ISA the machine has, native samples each row's reference token. */
function assertNativePicksReference(logits: Float32Array, vocab: number, rows: SamplingRow[]) {
  const expected = new Int32Array(rows.length);
  referenceSamplingKernels.sample(logits, vocab, rows, expected);
  for (const isa of isas) {
    setIsa(isa);
    const got = new Int32Array(rows.length).fill(-1);
    nativeSamplingKernels.sample(logits, vocab, rows, got);
    assert.deepEqual([...got], [...expected], isa);
  }
}

describe('sample: native picks the reference token', () => {
  const vocabs = [2, 17, 1000, 5003, 50000];
  for (const vocab of vocabs) {
    test(`vocab ${vocab}: random rows (temperature, top-k, top-p, ties, uniforms near 0 and 1) in one batch`, () => {
      const r = rng(vocab);
      const numRows = vocab >= 50000 ? 8 : 48;
      const logits = new Float32Array(numRows * vocab);
      const rows: SamplingRow[] = [];
      for (let i = 0; i < numRows; i++) {
        logits.set(lmLogits(r, vocab, [0.5, 2, 6][i % 3], i % 4 === 1), i * vocab);
        rows.push({
          temperature: [0, 0.05, 0.7, 1, 1.8][r.int(0, 4)],
          topK: [0, 0, 1, 3, 40, vocab - 1, vocab + 1][r.int(0, 6)],
          topP: [1, 1, 0.5, 0.9, 0.95, 0.999][r.int(0, 5)],
          uniform: [0, 0.999999999, 1 - 2 ** -53, r.next(), r.next(), r.next()][r.int(0, 5)],
        });
      }
      assertNativePicksReference(logits, vocab, rows);
    });
  }

  test('flat distributions with uniforms near 1 (the walk goes deep into the vocabulary)', () => {
    const r = rng(4);
    const vocab = 20000;
    const rows: SamplingRow[] = [];
    const logits = new Float32Array(6 * vocab);
    for (let i = 0; i < 6; i++) {
      for (let v = 0; v < vocab; v++) logits[i * vocab + v] = r.normal() * 0.01;
      rows.push({ temperature: 2, topK: i % 2 ? 0 : 15000, topP: i < 4 ? 1 : 0.999, uniform: 1 - 10 ** -(i + 3) });
    }
    const expected = new Int32Array(6);
    const got = new Int32Array(6);
    referenceSamplingKernels.sample(logits, vocab, rows, expected);
    nativeSamplingKernels.sample(logits, vocab, rows, got);
    assert.deepEqual([...got], [...expected]);
  });

  test("flat 128K rows (a random-weight model's logits): the walk stops in the right bucket, ±0 tie", () => {
    // Without top-k the native walk sums whole buckets of p (64 an octave) and sorts only the bucket where it
    // stops; +0 and −0 are different keys with the same p, so that run must still go lowest token first.
    // Extreme temperatures put most of the row in one bucket (p ≈ 1) or leave one token with weight.
    const r = rng(13);
    const vocab = 128256;
    const uniforms = [0, 1e-4, 0.37, 0.5, 0.9, 1 - 1e-9, 1 - 2 ** -53, r.next(), r.next(), r.next()];
    const temperatures = [1, 1, 1, 1, 0.5, 1, 1, 1e6, 1e-3, 2];
    const topPs = [1, 1, 1, 0.8, 1, 1, 0.999, 0.5, 0.3, 0.95];
    const logits = new Float32Array(uniforms.length * vocab);
    const rows: SamplingRow[] = uniforms.map((uniform, i) => {
      for (let v = 0; v < vocab; v++) {
        const signedZero = i % 2 === 1 && v % 3 === 0;
        logits[i * vocab + v] = signedZero ? (v % 2 ? -0 : 0) : r.normal() * 0.9;
      }
      return { temperature: temperatures[i], topK: 0, topP: topPs[i], uniform };
    });
    assertNativePicksReference(logits, vocab, rows);
  });

  test('a token whose weight rounds to zero is never drawn', () => {
    // Weights are p in units of 2^-S (S = 61 for three candidates): p = e^-50 ≈ 2^-72 weighs nothing, so even a
    // draw at the top of [0, 1) stops at the last token with weight.
    const logits = [0, -50, 0];
    for (const [name, k] of implementations) {
      for (const uniform of [0.6, 1 - 2 ** -53]) {
        assert.equal(sampleOne(k, logits, { uniform }), 2, `${name}, uniform ${uniform}`);
        assert.equal(sampleOne(k, logits, { uniform, topK: 2 }), 2, `${name}, top-k, uniform ${uniform}`);
      }
    }
  });

  test('equal p from logits +0 and −0: walked by token, not by key', () => {
    // +0 and −0 have the same p but different keys: the walk order interleaves them by token.
    const vocab = 10007;
    const uniforms = [0.1, 0.25, 0.6, 0.999];
    const logits = new Float32Array(uniforms.length * vocab);
    for (let i = 0; i < uniforms.length; i++) {
      for (let v = 0; v < vocab; v++) logits[i * vocab + v] = v % 2 ? -0 : 0;
    }
    const rows = uniforms.map((uniform) => ({ temperature: 1, topK: 0, topP: 1, uniform }));
    assertNativePicksReference(logits, vocab, rows);
  });

  test('a long prefix of few distinct probabilities: equal ones are walked lowest token first', () => {
    // Few distinct p put thousands of tokens in one native bucket: ties must keep token order, and every
    // uniform must land where the reference's sorted walk lands.
    const r = rng(11);
    const vocab = 30011;
    const numRows = 12;
    const logits = new Float32Array(numRows * vocab);
    const rows: SamplingRow[] = [];
    for (let i = 0; i < numRows; i++) {
      for (let v = 0; v < vocab; v++) logits[i * vocab + v] = ((v * 7919 + i) % 5) * 0.25;
      rows.push({ temperature: 1, topK: 0, topP: i < 8 ? 1 : 0.6, uniform: i === 0 ? 0 : r.next() });
    }
    assertNativePicksReference(logits, vocab, rows);
  });
});

describe('logSoftmax', () => {
  for (const vocab of [1, 5, 17, 1000, 151936]) {
    test(`vocab ${vocab}: native under every ISA matches the reference and exponentiates to 1`, () => {
      const r = rng(vocab + 3);
      const logits = lmLogits(r, vocab, 4, false);
      if (vocab > 4) logits[3] = Number.NEGATIVE_INFINITY;
      const expected = new Float32Array(vocab);
      referenceSamplingKernels.logSoftmax(logits, vocab, expected);
      for (const isa of isas) {
        setIsa(isa);
        const out = new Float32Array(vocab);
        nativeSamplingKernels.logSoftmax(logits, vocab, out);
        let diff = 0;
        let total = 0;
        for (let v = 0; v < vocab; v++) {
          if (out[v] !== expected[v])
            diff = Math.max(diff, Math.abs(out[v] - expected[v]) / (1 + Math.abs(expected[v])));
          total += Math.exp(out[v]);
        }
        assert.ok(diff < 2e-6, `${isa}: ${diff}`);
        assert.ok(Math.abs(total - 1) < 1e-4, `${isa}: Σ exp = ${total}`);
        if (vocab > 4) assert.equal(out[3], Number.NEGATIVE_INFINITY);
      }
    });
  }

  for (const [name, k] of implementations) {
    test(`${name}: equal rows give -log(vocab); a +inf logit takes probability 1`, () => {
      const out = new Float32Array(4);
      k.logSoftmax(new Float32Array(4).fill(Number.NEGATIVE_INFINITY), 4, out);
      for (const x of out) assert.ok(Math.abs(x + Math.log(4)) < 1e-6);
      k.logSoftmax(Float32Array.from([3, 3, 3, 3]), 4, out);
      for (const x of out) assert.ok(Math.abs(x + Math.log(4)) < 1e-6);
      k.logSoftmax(Float32Array.from([0, Number.POSITIVE_INFINITY, 1, 2]), 4, out);
      assert.deepEqual([...out], [Number.NEGATIVE_INFINITY, 0, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    });
  }
});

describe('sampling: bad arguments throw, never crash', () => {
  const good: SamplingRow = { temperature: 1, topK: 0, topP: 1, uniform: 0.5 };
  const bad: Partial<SamplingRow>[] = [
    { temperature: -1 },
    { temperature: Number.NaN },
    { temperature: Number.POSITIVE_INFINITY },
    { topK: 1.5 },
    { topK: -1 },
    { topP: 1.5 },
    { topP: -0.1 },
    { topP: Number.NaN },
    { uniform: 1 },
    { uniform: -0.1 },
    { uniform: Number.NaN },
  ];
  for (const [name, k] of implementations) {
    test(`${name}: invalid rows, vocab and buffers`, () => {
      const logits = new Float32Array(8);
      const out = new Int32Array(2);
      for (const b of bad) {
        assert.throws(() => k.sample(logits, 4, [good, { ...good, ...b }], out), RangeError, JSON.stringify(b));
      }
      assert.throws(() => k.sample(logits, 0, [good], out), RangeError);
      assert.throws(() => k.sample(logits, 5, [good, good], out), RangeError);
      assert.throws(() => k.sample(logits, 4, [good, good], new Int32Array(1)), RangeError);
      assert.throws(() => k.logSoftmax(logits, 9, new Float32Array(9)), RangeError);
      assert.throws(() => k.logSoftmax(logits, 0, logits), RangeError);
      k.sample(logits, 4, [], new Int32Array(0));
    });
  }
});
