/**
 * One conformance suite for every `Backend` (src/backends/types.ts), written against the interface only:
 * inputs go in through upload/setStep, outputs come back through read/sample, and each op's result is
 * compared with the same op on the reference backend. The backends: backends.ts (reference, native under
 * every ISA this CPU has; CUDA joins there).
 *
 * Tolerances are the kernel suites' (test/kernels/): GEMM |diff| ≤ 1e-6·(K + 1); RMSNorm (rows, heads)
 * 2e-6 relative; SiLU·mul 4e-6 relative; GeLU(tanh)·mul and soft-cap twice the kernel suites' bound against
 * float64 (both sides within it); RoPE q 1e-6; attention 2e-5; LoRA 2e-5 relative (|d| ≤ 2e-5·(1 + |ref|)).
 * Bitwise: upload/read, embedding, addInPlace, scaleInPlace, gatherLogitRows, sampled tokens, and every row
 * or column an op must leave alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Backend, EmbeddingTable, KvCache, StepState, Tensor } from '../../src/backends/types.ts';
import { f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import type {
  AttentionShape,
  LoraBank,
  LoraDtype,
  LoraModuleOutput,
  PackedAdapter,
  PackedWeight,
  SamplingRow,
  WeightDType,
  WeightMatrix,
} from '../../src/kernels/types.ts';
import { assertBitwise, maxAbsDiff, rng } from '../kernels/implementations.ts';
import { close, makeAdapter } from '../kernels/lora-fixtures.ts';
import { invFreqOf, makeScene } from './attention-scene.ts';
import { backendsUnderTest, plan, readAll, referenceBackend, stepOf } from './backends.ts';

/** Runs `op` on the backend under test and on the reference: [got, expected]. */
type Op = (b: Backend) => Float32Array;

/** max |a − b| / (|b| + floor), skipping equal elements (so ±inf agree). */
function maxRelDiff(a: Float32Array, b: Float32Array, floor = 1e-6): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + floor);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

function randomWeight(dtype: WeightDType, rows: number, cols: number, seed: number): WeightMatrix {
  const values = rng(seed).f32(rows * cols);
  if (dtype === 'f32') return { dtype, rows, cols, data: values };
  return { dtype, rows, cols, data: Uint16Array.from(values, dtype === 'f16' ? f32ToF16 : f32ToBf16) };
}

/** x as a product that rounds it to the weight's 16-bit dtype first sees it. */
function roundedTo(dtype: 'bf16' | 'f16', x: Float32Array): Float32Array {
  if (dtype === 'f16') return Float32Array.from(x, (v) => f16ToF32(f32ToF16(v)));
  return new Float32Array(Uint32Array.from(x, (v) => f32ToBf16(v) << 16).buffer);
}

/** An adapter with DoRA output scales on every targeted module but the last. */
function withOutScales(r: ReturnType<typeof rng>, a: PackedAdapter): PackedAdapter {
  const offsetOutScale = new Int32Array(a.rank.length).fill(-1);
  const parts: number[] = [0.5]; // a leading value: offsets are honoured
  const targeted = [...a.rank.keys()].filter((m) => a.rank[m] > 0);
  for (const m of targeted.slice(0, -1)) {
    offsetOutScale[m] = parts.length;
    for (let c = 0; c < a.outFeatures[m]; c++) parts.push(0.5 + r.next());
  }
  return { ...a, outScale: Float32Array.from(parts), offsetOutScale };
}

const DTYPES: WeightDType[] = ['f32', 'f16', 'bf16'];

for (const under of backendsUnderTest()) {
  describe(`backend ${under.name} conforms to the reference backend`, () => {
    const b = under.backend;
    const ref = referenceBackend;
    before(under.activate);
    after(under.restore);
    const both = (op: Op): [Float32Array, Float32Array] => [op(b), op(ref)];

    test('allocate, upload, read, free; reading past the end throws', () => {
      const values = rng(1).f32(37);
      const t = b.upload(values);
      const kept = values.slice();
      values[0] = 99; // upload copied
      assert.equal(t.length, 37);
      assertBitwise(readAll(b, t), kept, 'read all');
      assertBitwise(b.read(t, 5, 10), kept.subarray(5, 15), 'read a range');
      assert.equal(b.read(t, 37, 0).length, 0);
      assert.throws(() => b.read(t, 30, 8), RangeError);
      assert.throws(() => b.read(t, 0, 38), RangeError);
      assert.throws(() => b.read(t, -1, 2), RangeError);
      const a = b.allocate(64);
      assert.equal(a.length, 64);
      assert.equal(readAll(b, a).length, 64);
      b.free(t);
      b.free(a);
    });

    const GEMM_CASES = [
      { m: 1, k: 67, n: 33, bias: true },
      { m: 1, k: 5, n: 1, bias: false },
      { m: 7, k: 129, n: 17, bias: false },
      { m: 13, k: 576, n: 67, bias: true },
    ];
    for (const dtype of DTYPES)
      test(`packWeight + gemm, ${dtype} weights: M=1 and odd sizes, with and without bias; rows past M untouched`, () => {
        GEMM_CASES.forEach((c, i) => {
          const w = randomWeight(dtype, c.n, c.k, 100 + i);
          const r = rng(200 + i);
          const x = r.f32(c.m * c.k);
          const bias = c.bias ? r.f32(c.n) : undefined;
          const y0 = r.f32((c.m + 1) * c.n);
          const run = (be: Backend, xs: Float32Array) => {
            const y = be.upload(y0);
            be.gemm(be.upload(xs), be.packWeight(w), y, c.m, bias && be.upload(bias));
            return readAll(be, y);
          };
          const got = run(b, x);
          const expected = run(ref, dtype !== 'f32' && under.roundsActivations(dtype) ? roundedTo(dtype, x) : x);
          const what = `M=${c.m} K=${c.k} N=${c.n}${c.bias ? ' +bias' : ''}`;
          const err = maxAbsDiff(got.subarray(0, c.m * c.n), expected.subarray(0, c.m * c.n));
          assert.ok(err <= 1e-6 * (c.k + 1), `${what}: max |diff| ${err}`);
          assertBitwise(got.subarray(c.m * c.n), y0.subarray(c.m * c.n), `${what}: past M`);
        });
      });

    for (const dtype of DTYPES)
      test(`embeddingTable + embedding, ${dtype} table: exactly the reference (f16 subnormal, inf, -0)`, () => {
        const vocab = 37;
        const dim = 45;
        const values = rng(11).f32(vocab * dim, 3);
        values[5] = 1e-6;
        values[6] = 70000;
        values[7] = -0;
        const data = dtype === 'f32' ? values : Uint16Array.from(values, dtype === 'f16' ? f32ToF16 : f32ToBf16);
        const matrix: WeightMatrix = { dtype, rows: vocab, cols: dim, data };
        const tokens = Int32Array.of(0, 36, 5, 5, 17, 0, 1);
        const [got, expected] = both((be) => {
          const table = be.embeddingTable(matrix);
          assert.deepEqual([table.rows, table.cols], [vocab, dim]);
          const out = be.upload(new Float32Array(tokens.length * dim).fill(Number.NaN));
          be.embedding(stepOf(be, plan({ tokens })), table, out);
          return readAll(be, out);
        });
        assertBitwise(got, expected, dtype);
      });

    test('rmsNorm and rmsNormHeads: within 2e-6 relative; rows and columns outside untouched', () => {
      const r = rng(3);
      for (const [rows, dim] of [
        [5, 67],
        [1, 4099],
      ]) {
        const x = r.f32((rows + 1) * dim, 4);
        const weight = r.f32(dim, 2);
        const out0 = r.f32((rows + 1) * dim);
        const [got, expected] = both((be) => {
          const out = be.upload(out0);
          be.rmsNorm(be.upload(x), be.upload(weight), out, rows, dim, 1e-5);
          return readAll(be, out);
        });
        assert.ok(maxRelDiff(got, expected) < 2e-6, `rmsNorm ${rows}×${dim}: ${maxRelDiff(got, expected)}`);
        assertBitwise(got.subarray(rows * dim), out0.subarray(rows * dim), 'rmsNorm past the rows');
      }
      // q|k|v rows of 4 q heads, 2 k heads, 2 v heads of 16: q and k normalised, v left alone.
      const [rows, headDim, stride] = [3, 16, 8 * 16];
      const qkv = r.f32(rows * stride, 3);
      const qWeight = r.f32(headDim, 2);
      const kWeight = r.f32(headDim, 2);
      const [got, expected] = both((be) => {
        const x = be.upload(qkv);
        be.rmsNormHeads(x, rows, stride, 0, 4, headDim, be.upload(qWeight), 1e-6);
        be.rmsNormHeads(x, rows, stride, 4 * headDim, 2, headDim, be.upload(kWeight), 1e-6);
        return readAll(be, x);
      });
      assert.ok(maxRelDiff(got, expected) < 2e-6, `rmsNormHeads: ${maxRelDiff(got, expected)}`);
      for (let t = 0; t < rows; t++) {
        const v = [t * stride + 6 * headDim, (t + 1) * stride] as const;
        assertBitwise(got.subarray(...v), qkv.subarray(...v), `rmsNormHeads: v of row ${t}`);
      }
    });

    test('siluMul (4e-6 relative) and geluTanhMul (4e-6·|ref| + 2e-6·|up|) on odd sizes', () => {
      const r = rng(4);
      for (const [rows, inter] of [
        [1, 1],
        [3, 67],
      ]) {
        const gateUp = r.f32(rows * 2 * inter, 8);
        const run = (be: Backend, gelu: boolean) => {
          const out = be.allocate(rows * inter);
          if (gelu) be.geluTanhMul(be.upload(gateUp), out, rows, inter);
          else be.siluMul(be.upload(gateUp), out, rows, inter);
          return readAll(be, out);
        };
        const silu = maxRelDiff(run(b, false), run(ref, false), 1e-30);
        assert.ok(silu < 4e-6, `siluMul ${rows}×${inter}: ${silu}`);
        const got = run(b, true);
        const expected = run(ref, true);
        for (let t = 0; t < rows; t++)
          for (let i = 0; i < inter; i++) {
            const at = t * inter + i;
            const up = gateUp[t * 2 * inter + inter + i];
            const bound = 4e-6 * Math.abs(expected[at]) + 2e-6 * Math.abs(up) + 1e-30;
            assert.ok(Math.abs(got[at] - expected[at]) <= bound, `geluTanhMul row ${t} col ${i}`);
          }
      }
    });

    test('addInPlace and scaleInPlace bitwise, softcapInPlace within 2e-6 relative; the tail untouched', () => {
      const r = rng(5);
      const length = 1003;
      const x0 = r.f32(length + 3, 300);
      const y0 = r.f32(length + 3);
      const run = (be: Backend, op: (x: Tensor) => void) => {
        const x = be.upload(x0);
        op(x);
        return readAll(be, x);
      };
      const ops: [string, (be: Backend) => (x: Tensor) => void][] = [
        ['addInPlace', (be) => (x) => be.addInPlace(x, be.upload(y0), length)],
        ['scaleInPlace', (be) => (x) => be.scaleInPlace(x, length, Math.sqrt(2304))],
        ['softcapInPlace', (be) => (x) => be.softcapInPlace(x, length, 30)],
      ];
      for (const [name, op] of ops) {
        const got = run(b, op(b));
        const expected = run(ref, op(ref));
        if (name === 'softcapInPlace') assert.ok(maxRelDiff(got, expected, 1e-30) < 2e-6, name);
        else assertBitwise(got, expected, name);
        assertBitwise(got.subarray(length), x0.subarray(length), `${name}: tail`);
      }
    });

    test('createKvCache: the shape as given, bytesPerToken of f32 and bf16', () => {
      for (const [dtype, bytes] of [
        ['f32', 4],
        ['bf16', 2],
      ] as const) {
        const shape = { numLayers: 3, numBlocks: 5, blockSize: 4, rowWidth: 24, dtype };
        const kv = b.createKvCache(shape);
        assert.deepEqual(kv.shape, shape);
        assert.equal(kv.bytesPerToken, 2 * 3 * 24 * bytes);
      }
    });

    const ATTENTION: [string, AttentionShape][] = [
      ['GQA 4/2, D 16', { numHeads: 4, numKvHeads: 2, headDim: 16, blockSize: 4 }],
      [
        'GQA 6/2, D 8, sliding window 5, scale 0.3, soft-cap 20, rotary 4 of 8',
        {
          numHeads: 6,
          numKvHeads: 2,
          headDim: 8,
          blockSize: 3,
          slidingWindow: 5,
          scale: 0.3,
          softcap: 20,
          rotaryDim: 4,
        },
      ],
    ];
    for (const dtype of ['f32', 'bf16'] as const)
      for (const [name, shape] of ATTENTION)
        test(`setStep + ropeAndCacheWrite + pagedAttention, ${dtype} KV, ${name}: prefill, then a chunk among decodes`, () => {
          const r = rng(shape.headDim + (dtype === 'bf16' ? 1 : 0));
          const scene = makeScene(r, shape);
          const { numHeads: hq, numKvHeads: hkv, headDim: d } = shape;
          const qkvs = scene.steps.map((s) => [0, 1].map(() => r.f32(s.numTokens * (hq + 2 * hkv) * d, 2)));
          const run = (be: Backend) => {
            const kv = be.createKvCache({
              numLayers: 2,
              numBlocks: scene.numBlocks,
              blockSize: shape.blockSize,
              rowWidth: hkv * d,
              dtype,
            });
            const invFreq = be.upload(invFreqOf(shape));
            const step = be.createStep();
            const outputs: Float32Array[] = [];
            scene.steps.forEach((inputs, s) => {
              be.setStep(step, inputs);
              for (const layer of [0, 1]) {
                const q = be.allocate(inputs.numTokens * hq * d);
                const out = be.allocate(inputs.numTokens * hq * d);
                be.ropeAndCacheWrite(step, be.upload(qkvs[s][layer]), shape, invFreq, q, kv, layer);
                be.pagedAttention(step, q, kv, layer, out, shape);
                outputs.push(readAll(be, q), readAll(be, out));
              }
            });
            return outputs;
          };
          const got = run(b);
          const expected = run(ref);
          got.forEach((g, i) => {
            const what = `step ${i >> 2}, layer ${(i >> 1) & 1}, ${i % 2 ? 'attention' : 'rotated q'}`;
            const err = maxAbsDiff(g, expected[i]);
            assert.ok(err <= (i % 2 ? 2e-5 : 1e-6), `${what}: max |diff| ${err}`);
          });
        });

    // Three modules sharing x [rows, 67] (N = 53, 21, 1) at disjoint offsets of rows of 83; slot 2 is DoRA.
    const K = 67;
    const NS = [53, 21, 1];
    const MODULES: LoraModuleOutput[] = [
      { module: 1, yOffset: 57, n: 21 },
      { module: 0, yOffset: 2, n: 53 },
      { module: 2, yOffset: 81, n: 1 },
    ];
    const Y_STRIDE = 83;
    const lr = rng(6);
    const ADAPTERS = [
      makeAdapter(lr, K, NS, [8, 0, 3]),
      makeAdapter(lr, K, NS, [1, 16, 2]),
      withOutScales(lr, makeAdapter(lr, K, NS, [4, 5, 0])),
    ];
    const bankOf = (be: Backend, dtype: LoraDtype): LoraBank => {
      const bank = be.createLoraBank(4, NS.length, dtype);
      for (const [s, a] of ADAPTERS.entries()) be.setLoraSlot(bank, s, a);
      return bank;
    };
    /** y after applyAdapters over rows using `rowSlot`, or the error it threw. */
    const applied = (be: Backend, bank: LoraBank, rowSlot: Int32Array, seed: number, modules = MODULES) => {
      const r = rng(seed);
      const rows = rowSlot.length;
      const values = r.f32(rows * K);
      // The reference sees x as the backend under test's shrink does (rounded to bf16 on AMX).
      const x = be.upload(be === ref && under.roundsLoraActivations(bank.dtype) ? roundedTo('bf16', values) : values);
      const y = be.upload(r.f32(Math.max(rows, 1) * Y_STRIDE));
      const step = stepOf(be, plan({ tokens: new Int32Array(rows), rowSlot }));
      be.applyAdapters(bank, step, x, K, { y, yStride: Y_STRIDE, modules });
      return readAll(be, y);
    };
    const ROW_SLOTS: [string, number[]][] = [
      ['rows of several slots and base rows', [0, -1, 1, 2, 0, 0, -1, 2, 1]],
      ['one row', [1]],
      ['one DoRA row', [2]],
      ['base rows only', [-1, -1, -1]],
      ['an empty step', []],
    ];
    for (const dtype of ['f32', 'bf16', 'f16'] as const)
      test(`createLoraBank(${dtype}) + setLoraSlot + applyAdapters: ${ROW_SLOTS.map(([n]) => n).join(', ')}`, () => {
        const banks = [bankOf(b, dtype), bankOf(ref, dtype)];
        assert.deepEqual([banks[0].numSlots, banks[0].numModules, banks[0].dtype], [4, 3, dtype]);
        ROW_SLOTS.forEach(([name, slots], i) => {
          const rowSlot = Int32Array.from(slots);
          const got = applied(b, banks[0], rowSlot, 60 + i);
          close(got, applied(ref, banks[1], rowSlot, 60 + i), `${dtype}, ${name}`);
          const y0 = rng(60 + i);
          y0.f32(rowSlot.length * K);
          const before = y0.f32(Math.max(rowSlot.length, 1) * Y_STRIDE);
          rowSlot.forEach((slot, t) => {
            const row = [t * Y_STRIDE, (t + 1) * Y_STRIDE] as const;
            if (slot === -1) assertBitwise(got.subarray(...row), before.subarray(...row), `${name}: base row ${t}`);
            for (const gap of [0, 1, 55, 56, 78, 79, 80, 82])
              assert.equal(
                got[t * Y_STRIDE + gap],
                before[t * Y_STRIDE + gap],
                `${name}: column ${gap} is no module's`,
              );
          });
          if (rowSlot.length === 0) assertBitwise(got, before, 'an empty step writes nothing');
        });
      });

    test('clearLoraSlot: a row of a cleared slot is a RangeError; setLoraSlot refills it', () => {
      const bank = bankOf(b, 'f32');
      const rowSlot = Int32Array.of(1, 0, -1);
      const full = applied(b, bank, rowSlot, 70);
      b.clearLoraSlot(bank, 1);
      assert.throws(() => applied(b, bank, rowSlot, 70), RangeError);
      assert.throws(() => applied(b, bank, Int32Array.of(3), 70), RangeError); // never set
      applied(b, bank, Int32Array.of(0, -1), 70); // the other slots still apply
      b.setLoraSlot(bank, 1, ADAPTERS[1]);
      assertBitwise(applied(b, bank, rowSlot, 70), full, 'refilled slot');
    });

    test('gatherLogitRows: the step logit rows, out of order, bitwise', () => {
      const dim = 13;
      const x0 = rng(8).f32(6 * dim);
      const logitRows = Int32Array.of(4, 0, 5);
      const [got, expected] = both((be) => {
        const out = be.allocate(logitRows.length * dim);
        be.gatherLogitRows(stepOf(be, plan({ tokens: new Int32Array(6), logitRows })), be.upload(x0), dim, out);
        return readAll(be, out);
      });
      assertBitwise(got, expected, 'vs reference');
      for (const [r, t] of logitRows.entries())
        assertBitwise(got.subarray(r * dim, (r + 1) * dim), x0.subarray(t * dim, (t + 1) * dim), `row ${r}`);
    });

    test('sample: greedy and seeded rows pick the reference tokens; rowIndex in and out of order', () => {
      const r = rng(9);
      const vocab = 1000;
      const logits = r.f32(5 * vocab, 4);
      logits[2 * vocab + 17] = 50; // a clear argmax
      const rows: SamplingRow[] = [
        { temperature: 0, topK: 0, topP: 1, uniform: 0.5 },
        { temperature: 0.7, topK: 40, topP: 0.9, uniform: 0.3 },
        { temperature: 1, topK: 0, topP: 1, uniform: 0.999 },
        { temperature: 1.3, topK: 5, topP: 0.5, uniform: 0.01 },
        { temperature: 0, topK: 3, topP: 0.2, uniform: 0.9 },
      ];
      const sample = (be: Backend, rowIndex: number[], which = rows) => [
        ...be.sample(be.upload(logits), vocab, Int32Array.from(rowIndex), which),
      ];
      for (const rowIndex of [
        [0, 1, 2, 3, 4],
        [4, 1, 3, 0, 2],
        [2, 2],
      ]) {
        const which = rowIndex.map((_, i) => rows[i]);
        const got = sample(b, rowIndex, which);
        assert.deepEqual(got, sample(ref, rowIndex, which), `rowIndex ${rowIndex}`);
        for (const [i, row] of rowIndex.entries())
          assert.equal(got[i], sample(b, [row], [which[i]])[0], `entry ${i} alone`);
      }
      assert.equal(sample(b, [2], [rows[0]])[0], 17);
      assert.deepEqual(sample(b, [], []), []);
    });

    test("another backend's handles are refused with a TypeError", () => {
      const tensor = { length: 4 } as Tensor;
      const real = b.upload(new Float32Array(4));
      const step = { numTokens: 1, numLogitRows: 0, hasAdapters: true } as StepState;
      const kv = { shape: { numLayers: 1, numBlocks: 1, blockSize: 1, rowWidth: 4, dtype: 'f32' }, bytesPerToken: 32 };
      const table = { rows: 1, cols: 4 } as EmbeddingTable;
      const weight = { dtype: 'f32', rows: 4, cols: 4 } as PackedWeight;
      const bank = { numSlots: 1, numModules: 1, dtype: 'f32' } as LoraBank;
      const shape = { numHeads: 1, numKvHeads: 1, headDim: 4, blockSize: 1 };
      const own = stepOf(b, plan({ tokens: Int32Array.of(0), rowSlot: Int32Array.of(0) }));
      const ownKv = b.createKvCache(kv.shape as KvCache['shape']);
      const calls: [string, () => unknown][] = [
        ['read', () => b.read(tensor, 0, 1)],
        ['free', () => b.free(tensor)],
        ['rmsNorm', () => b.rmsNorm(tensor, real, real, 1, 4, 1e-6)],
        ['addInPlace', () => b.addInPlace(real, tensor, 4)],
        ['gemm (tensor)', () => b.gemm(tensor, b.packWeight(randomWeight('f32', 4, 4, 1)), real, 1)],
        ['gemm (weight)', () => b.gemm(real, weight, real, 1)],
        ['setStep', () => b.setStep(step, plan({ tokens: Int32Array.of(0) }))],
        ['embedding (step)', () => b.embedding(step, b.embeddingTable(randomWeight('f32', 1, 4, 1)), real)],
        ['embedding (table)', () => b.embedding(own, table, real)],
        ['pagedAttention (cache)', () => b.pagedAttention(own, real, kv as KvCache, 0, real, shape)],
        ['pagedAttention (step)', () => b.pagedAttention(step, real, ownKv, 0, real, shape)],
        ['setLoraSlot', () => b.setLoraSlot(bank, 0, ADAPTERS[0])],
        ['applyAdapters', () => b.applyAdapters(bank, own, real, 4, { y: real, yStride: 4, modules: [] })],
        ['gatherLogitRows', () => b.gatherLogitRows(step, real, 4, real)],
        ['sample', () => b.sample(tensor, 4, Int32Array.of(0), [{ temperature: 0, topK: 0, topP: 1, uniform: 0 }])],
      ];
      for (const [name, call] of calls) assert.throws(call, TypeError, name);
    });
  });
}
