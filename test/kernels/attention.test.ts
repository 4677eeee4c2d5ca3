/**
 * Attention kernels (RoPE + cache write, paged attention): native under every ISA against the reference,
 * the batch-invariance guarantee (bitwise: other sequences, prefill chunking vs decode, thread count),
 * GQA, padding slots, empty batches and argument validation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { bf16ToF32, f32ToBf16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { nativeAttentionKernels } from '../../src/kernels/native/attention.ts';
import { referenceAttentionKernels } from '../../src/kernels/reference/attention.ts';
import type { AttentionBatch, AttentionShape } from '../../src/kernels/types.ts';
import {
  assertBitwise,
  availableIsas,
  maxAbsDiff,
  type Rng,
  restoreDefaults,
  rng,
  withThreads,
} from './implementations.ts';

type AttentionKernels = typeof nativeAttentionKernels;

const isas = availableIsas();
after(restoreDefaults);

interface SeqSpec {
  qLen: number;
  kvLen: number;
}

/** A cache full of random keys/values, each sequence owning shuffled (non-contiguous) blocks. */
interface Scene {
  shape: AttentionShape;
  kCache: Float32Array;
  vCache: Float32Array;
  /** Block table of each sequence (long enough for its kvLen). */
  tables: number[][];
}

function makeScene(r: Rng, shape: AttentionShape, kvLens: number[]): Scene {
  const needed = kvLens.map((kv) => Math.ceil(kv / shape.blockSize));
  const spare = 3;
  const numBlocks = needed.reduce((a, b) => a + b, 0) + spare;
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  let next = 0;
  const tables = needed.map((n) => {
    next += n;
    return ids.slice(next - n, next);
  });
  const size = numBlocks * shape.blockSize * shape.numKvHeads * shape.headDim;
  return { shape, kCache: r.f32(size, 2), vCache: r.f32(size), tables };
}

/** The batch for `specs` (sequence i of the batch is scene sequence seqIds[i]), block tables with a gap. */
function makeBatch(scene: Scene, seqIds: number[], specs: SeqSpec[]): AttentionBatch {
  const qStart = new Int32Array(specs.length + 1);
  specs.forEach((s, i) => {
    qStart[i + 1] = qStart[i] + s.qLen;
  });
  const flat: number[] = [0]; // an unrelated leading entry: blockTableStart is honoured
  const blockTableStart = new Int32Array(specs.length);
  seqIds.forEach((id, i) => {
    blockTableStart[i] = flat.length;
    flat.push(...scene.tables[id]);
  });
  return {
    qStart,
    kvLen: Int32Array.from(specs.map((s) => s.kvLen)),
    blockTables: Int32Array.from(flat),
    blockTableStart,
    numSeqs: specs.length,
  };
}

/** Query rows for scene sequence positions: q of (sequence id, position) is fixed, whatever the batch. */
function queryRows(shape: AttentionShape, seqIds: number[], specs: SeqSpec[]): Float32Array {
  const width = shape.numHeads * shape.headDim;
  const rows: Float32Array[] = [];
  seqIds.forEach((id, i) => {
    const first = specs[i].kvLen - specs[i].qLen;
    for (let p = first; p < specs[i].kvLen; p++) rows.push(rng(1000 * id + p + 1).f32(width, 2));
  });
  const q = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    q.set(row, i * width);
  });
  return q;
}

function attend(k: AttentionKernels, scene: Scene, seqIds: number[], specs: SeqSpec[]): Float32Array {
  const batch = makeBatch(scene, seqIds, specs);
  const q = queryRows(scene.shape, seqIds, specs);
  const out = new Float32Array(q.length).fill(Number.NaN);
  k.pagedAttention(q, scene.kCache, scene.vCache, out, scene.shape, batch);
  return out;
}

function rowsOf(out: Float32Array, shape: AttentionShape, from: number, count: number): Float32Array {
  const width = shape.numHeads * shape.headDim;
  return out.slice(from * width, (from + count) * width);
}

const headConfigs = [
  [1, 1],
  [4, 2],
  [9, 3],
  [8, 1],
] as const;
const headDims = [8, 16, 64, 80, 128];
const blockSizes = [1, 4, 16];

describe('pagedAttention: native under every ISA matches the reference', () => {
  let combo = 0;
  for (const headDim of headDims) {
    for (const [numHeads, numKvHeads] of headConfigs) {
      const blockSize = blockSizes[combo++ % blockSizes.length];
      const shape = { numHeads, numKvHeads, headDim, blockSize };
      test(`D=${headDim} Hq/Hkv=${numHeads}/${numKvHeads} blockSize=${blockSize}: mixed prefill chunks and decodes`, () => {
        const r = rng(combo * 97 + headDim);
        // decode with a long history, a prefill chunk over cached tokens, a whole prompt, a 1-token prompt,
        // a decode at kvLen 300, and a sequence with no query this step.
        const specs: SeqSpec[] = [
          { qLen: 1, kvLen: r.int(2, 299) },
          { qLen: r.int(2, 9), kvLen: r.int(40, 120) },
          { qLen: 0, kvLen: 5 },
          { qLen: r.int(10, 23), kvLen: 0 },
          { qLen: 1, kvLen: 1 },
          { qLen: 1, kvLen: 300 },
        ];
        specs[3].kvLen = specs[3].qLen;
        const ids = specs.map((_, i) => i);
        const scene = makeScene(
          r,
          shape,
          specs.map((s) => s.kvLen),
        );
        const expected = attend(referenceAttentionKernels, scene, ids, specs);
        for (const isa of isas) {
          setIsa(isa);
          const got = attend(nativeAttentionKernels, scene, ids, specs);
          const diff = maxAbsDiff(got, expected);
          assert.ok(diff < 2e-5, `${isa}: max |native - reference| = ${diff}`);
        }
      });
    }
  }
});

describe('pagedAttention: other shapes (7 heads per kv head, head dims past 128)', () => {
  for (const [headDim, blockSize] of [
    [72, 16],
    [136, 4],
    [256, 16],
  ]) {
    test(`D=${headDim} Hq/Hkv=14/2 blockSize=${blockSize}`, () => {
      const shape = { numHeads: 14, numKvHeads: 2, headDim, blockSize };
      const r = rng(headDim);
      const specs: SeqSpec[] = [
        { qLen: 1, kvLen: 77 },
        { qLen: 19, kvLen: 40 },
      ];
      const scene = makeScene(r, shape, [77, 40]);
      const expected = attend(referenceAttentionKernels, scene, [0, 1], specs);
      for (const isa of isas) {
        setIsa(isa);
        const diff = maxAbsDiff(attend(nativeAttentionKernels, scene, [0, 1], specs), expected);
        assert.ok(diff < 2e-5, `${isa}: max |native - reference| = ${diff}`);
      }
    });
  }
});

describe('pagedAttention: batch invariance (bitwise, per ISA)', () => {
  const shape = { numHeads: 8, numKvHeads: 2, headDim: 80, blockSize: 4 };
  const r = rng(42);
  const scene = makeScene(r, shape, [70, 300, 33, 17]);

  for (const isa of isas) {
    test(`${isa}: a sequence gives the same bits alone, in a batch, first or last`, () => {
      setIsa(isa);
      const spec: SeqSpec = { qLen: 6, kvLen: 70 };
      const alone = attend(nativeAttentionKernels, scene, [0], [spec]);
      const batchSpecs = [{ qLen: 1, kvLen: 300 }, spec, { qLen: 33, kvLen: 33 }];
      const inBatch = attend(nativeAttentionKernels, scene, [1, 0, 2], batchSpecs);
      assertBitwise(rowsOf(inBatch, shape, 1, 6), alone, 'middle of a batch');
      const last = attend(nativeAttentionKernels, scene, [2, 1, 0], [batchSpecs[2], batchSpecs[0], spec]);
      assertBitwise(rowsOf(last, shape, 34, 6), alone, 'last in a batch');
    });

    test(`${isa}: a decode gives the same bits alone and among many decodes`, () => {
      setIsa(isa);
      const alone = attend(nativeAttentionKernels, scene, [1], [{ qLen: 1, kvLen: 211 }]);
      const specs = [70, 211, 33, 17, 69, 5].map((kvLen) => ({ qLen: 1, kvLen }));
      const many = attend(nativeAttentionKernels, scene, [0, 1, 2, 3, 0, 2], specs);
      assertBitwise(rowsOf(many, shape, 1, 1), alone, 'decode among decodes');
    });

    test(`${isa}: token 17 of a 17-token prefill equals its decode after a 16-token prefill`, () => {
      setIsa(isa);
      const oneShot = attend(nativeAttentionKernels, scene, [3], [{ qLen: 17, kvLen: 17 }]);
      const decode = attend(nativeAttentionKernels, scene, [3], [{ qLen: 1, kvLen: 17 }]);
      assertBitwise(rowsOf(oneShot, shape, 16, 1), decode, 'decode vs prefill');
    });

    test(`${isa}: chunked prefill equals one-shot prefill, row by row`, () => {
      setIsa(isa);
      const oneShot = attend(nativeAttentionKernels, scene, [1], [{ qLen: 300, kvLen: 300 }]);
      let done = 0;
      for (const chunk of [1, 16, 17, 50, 100, 116]) {
        const part = attend(nativeAttentionKernels, scene, [1], [{ qLen: chunk, kvLen: done + chunk }]);
        assertBitwise(part, rowsOf(oneShot, shape, done, chunk), `chunk at ${done}`);
        done += chunk;
      }
      assert.equal(done, 300);
    });

    test(`${isa}: the thread count does not change the bits`, () => {
      setIsa(isa);
      const specs = [
        { qLen: 40, kvLen: 300 },
        { qLen: 1, kvLen: 70 },
      ];
      const serial = withThreads(1, () => attend(nativeAttentionKernels, scene, [1, 0], specs));
      const threaded = withThreads(3, () => attend(nativeAttentionKernels, scene, [1, 0], specs));
      assertBitwise(threaded, serial, 'threads 3 vs 1');
    });
  }
});

// Head dims that are multiples of 16 take the AVX-512 prefill path with 16 (query, head) pairs in lanes
// (attention_lanes in native/src/cpu/attention_kernels.h; 64 and 128 with their block counts at compile time):
// every query of a prefill must still give the bits of its lone decode, which folds one query's heads with the
// keys in lanes. Groups of 1 to 8 query heads per kv head (lane groups that split a query's heads), soft-capping,
// sliding windows (a window's start inside a chunk), bf16 caches, every ISA.
describe('pagedAttention: each prefill query gives its decode bits at head dims 64, 80 and 128', () => {
  const cases = [
    { headDim: 64, numHeads: 9, numKvHeads: 3 },
    { headDim: 64, numHeads: 8, numKvHeads: 8 },
    { headDim: 64, numHeads: 10, numKvHeads: 2, softcap: 30 },
    { headDim: 80, numHeads: 6, numKvHeads: 2, slidingWindow: 19 },
    { headDim: 128, numHeads: 8, numKvHeads: 1, slidingWindow: 21 },
    { headDim: 128, numHeads: 8, numKvHeads: 2, slidingWindow: 5, softcap: 5 },
  ];
  for (const { headDim, numHeads, numKvHeads, ...rest } of cases) {
    const name = `D=${headDim} Hq/Hkv=${numHeads}/${numKvHeads}${rest.softcap ? ` softcap ${rest.softcap}` : ''}${rest.slidingWindow ? ` window ${rest.slidingWindow}` : ''}`;
    test(name, () => {
      const shape: AttentionShape = { numHeads, numKvHeads, headDim, blockSize: 16, ...rest };
      const scene = makeScene(rng(headDim + numHeads), shape, [53, 40]);
      const bf16 = bf16Scene(scene);
      const forms = [
        ['f32', (ids: number[], specs: SeqSpec[]) => attend(nativeAttentionKernels, scene, ids, specs)],
        ['bf16', (ids: number[], specs: SeqSpec[]) => bf16.attendBf16(nativeAttentionKernels, ids, specs)],
      ] as const;
      // a whole 53-token prompt beside a 9-token chunk at positions 31..39 of another sequence
      const specs = [
        { qLen: 53, kvLen: 53 },
        { qLen: 9, kvLen: 40 },
      ];
      for (const isa of isas) {
        setIsa(isa);
        for (const [label, run] of forms) {
          const prefill = run([0, 1], specs);
          for (const [seq, first, row0] of [
            [0, 0, 0],
            [1, 31, 53],
          ] as const) {
            for (let i = 0; i < specs[seq].qLen; i++) {
              const decode = run([seq], [{ qLen: 1, kvLen: first + i + 1 }]);
              assertBitwise(
                rowsOf(prefill, shape, row0 + i, 1),
                decode,
                `${isa} ${label}: sequence ${seq}, query ${i}`,
              );
            }
          }
        }
      }
    });
  }
});

describe('pagedAttention: semantics of the reference', () => {
  test('grouped-query attention equals multi-head attention over repeated kv heads', () => {
    const r = rng(5);
    const gqa = { numHeads: 6, numKvHeads: 2, headDim: 16, blockSize: 4 };
    const mha = { ...gqa, numKvHeads: 6 };
    const scene = makeScene(r, gqa, [23]);
    const rows = scene.kCache.length / (gqa.numKvHeads * gqa.headDim);
    const expand = (cache: Float32Array) => {
      const out = new Float32Array(rows * mha.numKvHeads * gqa.headDim);
      for (let row = 0; row < rows; row++)
        for (let h = 0; h < 6; h++) {
          const src = (row * 2 + Math.floor(h / 3)) * 16;
          out.set(cache.subarray(src, src + 16), (row * 6 + h) * 16);
        }
      return out;
    };
    const mhaScene = { shape: mha, kCache: expand(scene.kCache), vCache: expand(scene.vCache), tables: scene.tables };
    const specs = [{ qLen: 5, kvLen: 23 }];
    for (const k of [referenceAttentionKernels, nativeAttentionKernels]) {
      const a = attend(k, scene, [0], specs);
      const b = attend(k, mhaScene, [0], specs);
      assert.ok(maxAbsDiff(a, b) < 1e-6);
    }
  });

  test('one visible key returns its value; equal scores average the values', () => {
    const shape = { numHeads: 1, numKvHeads: 1, headDim: 2, blockSize: 2 };
    const kCache = Float32Array.from([1, 0, 1, 0]);
    const vCache = Float32Array.from([2, 4, 6, 8]);
    const batch = (kvLen: number) => ({
      qStart: Int32Array.from([0, 1]),
      kvLen: Int32Array.from([kvLen]),
      blockTables: Int32Array.from([0]),
      blockTableStart: Int32Array.from([0]),
      numSeqs: 1,
    });
    for (const k of [referenceAttentionKernels, nativeAttentionKernels]) {
      const out = new Float32Array(2);
      k.pagedAttention(Float32Array.from([3, 1]), kCache, vCache, out, shape, batch(1));
      assert.deepEqual([...out], [2, 4]);
      k.pagedAttention(Float32Array.from([3, 1]), kCache, vCache, out, shape, batch(2));
      assert.deepEqual([...out], [4, 6]);
    }
  });

  test('an empty batch and a batch of query-less sequences leave out untouched', () => {
    const shape = { numHeads: 2, numKvHeads: 1, headDim: 8, blockSize: 4 };
    const scene = makeScene(rng(9), shape, [9]);
    for (const k of [referenceAttentionKernels, nativeAttentionKernels]) {
      const out = Float32Array.from([1.5]);
      const empty = {
        qStart: Int32Array.from([0]),
        kvLen: new Int32Array(0),
        blockTables: new Int32Array(0),
        blockTableStart: new Int32Array(0),
        numSeqs: 0,
      };
      k.pagedAttention(new Float32Array(0), scene.kCache, scene.vCache, out, shape, empty);
      k.pagedAttention(new Float32Array(0), scene.kCache, scene.vCache, out, shape, {
        ...makeBatch(scene, [0], [{ qLen: 0, kvLen: 9 }]),
      });
      assert.equal(out[0], 1.5);
    }
  });
});

/** qkv rows for T tokens and the expected RoPE of the reference, through both implementations. */
function ropeCase(r: Rng, shape: AttentionShape, numTokens: number, numBlocks: number) {
  const { numHeads: hq, numKvHeads: hkv, headDim: d, blockSize } = shape;
  const qkv = r.f32(numTokens * (hq + 2 * hkv) * d, 3);
  const positions = Int32Array.from({ length: numTokens }, () => r.int(0, 130000));
  positions[0] = 0;
  const invFreq = Float32Array.from({ length: d / 2 }, (_, i) => Math.fround(1 / 500000 ** ((2 * i) / d)));
  const rows = numBlocks * blockSize;
  const order = Array.from({ length: rows }, (_, i) => i).sort(() => r.next() - 0.5);
  const slotMapping = Int32Array.from({ length: numTokens }, (_, t) => (t % 5 === 3 ? -1 : order[t]));
  return { qkv, positions, invFreq, slotMapping, cacheLength: rows * hkv * d };
}

function runRope(k: AttentionKernels, shape: AttentionShape, c: ReturnType<typeof ropeCase>, numTokens: number) {
  const qOut = new Float32Array(numTokens * shape.numHeads * shape.headDim).fill(Number.NaN);
  const kCache = new Float32Array(c.cacheLength).fill(-7);
  const vCache = new Float32Array(c.cacheLength).fill(-7);
  k.ropeAndCacheWrite(c.qkv, numTokens, shape, c.positions, c.invFreq, qOut, kCache, vCache, c.slotMapping);
  return { qOut, kCache, vCache };
}

describe('ropeAndCacheWrite', () => {
  for (const headDim of headDims) {
    test(`D=${headDim}: native under every ISA matches the reference, padding slots are not written`, () => {
      const shape = { numHeads: 9, numKvHeads: 3, headDim, blockSize: 4 };
      const r = rng(headDim);
      const numTokens = 23;
      const c = ropeCase(r, shape, numTokens, 8);
      const expected = runRope(referenceAttentionKernels, shape, c, numTokens);
      for (const isa of isas) {
        setIsa(isa);
        const got = runRope(nativeAttentionKernels, shape, c, numTokens);
        assert.ok(maxAbsDiff(got.qOut, expected.qOut) <= 1e-6, `${isa}: q`);
        assert.ok(maxAbsDiff(got.kCache, expected.kCache) <= 1e-6, `${isa}: k`);
        assertBitwise(got.vCache, expected.vCache, `${isa}: v is copied as is`);
      }
      // Rows of padding tokens (slot -1) and unused rows keep their old contents.
      const width = shape.numKvHeads * headDim;
      const written = new Set(Array.from(c.slotMapping).filter((s) => s >= 0));
      for (let row = 0; row < c.cacheLength / width; row++) {
        if (written.has(row)) continue;
        assert.ok(expected.kCache.subarray(row * width, (row + 1) * width).every((x) => x === -7));
      }
    });
  }

  test('position 0 leaves q and k unchanged; the rotation follows rotate_half', () => {
    const shape = { numHeads: 1, numKvHeads: 1, headDim: 4, blockSize: 1 };
    const qkv = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const invFreq = Float32Array.from([1, 0.5]);
    for (const k of [referenceAttentionKernels, nativeAttentionKernels]) {
      const qOut = new Float32Array(8);
      const kCache = new Float32Array(8);
      const vCache = new Float32Array(8);
      k.ropeAndCacheWrite(
        qkv,
        2,
        shape,
        Int32Array.from([0, 1]),
        invFreq,
        qOut,
        kCache,
        vCache,
        Int32Array.from([1, 0]),
      );
      assert.deepEqual([...qOut.subarray(0, 4)], [1, 2, 3, 4]);
      assert.deepEqual([...kCache.subarray(4, 8)], [5, 6, 7, 8]);
      assert.deepEqual([...vCache.subarray(4, 8)], [9, 10, 11, 12]);
      const f = Math.fround;
      const [c0, s0] = [f(Math.cos(1)), f(Math.sin(1))];
      assert.equal(qOut[4], f(f(1 * c0) - f(3 * s0)));
      assert.equal(qOut[6], f(f(3 * c0) + f(1 * s0)));
    }
  });

  test('the cos/sin kept between calls: other frequencies, rotary dims and positions in between never change a call', () => {
    const shape: AttentionShape = { numHeads: 2, numKvHeads: 1, headDim: 64, blockSize: 4 };
    const freqs = (base: number, half: number) =>
      Float32Array.from({ length: half }, (_, i) => Math.fround(1 / base ** (i / half)));
    const near = Int32Array.from([0, 1, 2, 3, 500, 17]);
    const cases = [
      { shape, invFreq: freqs(10000, 32), positions: near },
      { shape, invFreq: freqs(500000, 32), positions: near }, // same length, other frequencies
      { shape: { ...shape, rotaryDim: 32 }, invFreq: freqs(10000, 16), positions: near }, // other length
      // Far positions: the table grows past 40000; 2·10⁹ lies past its size limit and is computed in the call.
      { shape, invFreq: freqs(10000, 32), positions: Int32Array.from([40000, 3, 2_000_000_000, 70000, 9, 1]) },
    ];
    const r = rng(91);
    const inputs = cases.map((c) => {
      const t = c.positions.length;
      return {
        qkv: r.f32(t * 4 * 64, 3),
        positions: c.positions,
        invFreq: c.invFreq,
        slotMapping: Int32Array.from({ length: t }, (_, i) => i),
        cacheLength: 8 * 64,
      };
    });
    for (const isa of isas) {
      setIsa(isa);
      const first = cases.map((c, i) => runRope(nativeAttentionKernels, c.shape, inputs[i], c.positions.length));
      cases.forEach((c, i) => {
        const expected = runRope(referenceAttentionKernels, c.shape, inputs[i], c.positions.length);
        assert.ok(maxAbsDiff(first[i].qOut, expected.qOut) <= 1e-6, `${isa}: case ${i} q`);
        assert.ok(maxAbsDiff(first[i].kCache, expected.kCache) <= 1e-6, `${isa}: case ${i} k`);
      });
      for (let i = cases.length - 1; i >= 0; i--) {
        const again = runRope(nativeAttentionKernels, cases[i].shape, inputs[i], cases[i].positions.length);
        assertBitwise(again.qOut, first[i].qOut, `${isa}: case ${i} again, q`);
        assertBitwise(again.kCache, first[i].kCache, `${isa}: case ${i} again, k`);
      }
    }
  });

  test('a prefill written in chunks attends exactly like one written at once (native, every ISA)', () => {
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 64, blockSize: 16 };
    const r = rng(77);
    const total = 37;
    const qkv = r.f32(total * 8 * 64);
    const invFreq = Float32Array.from({ length: 32 }, (_, i) => Math.fround(1 / 10000 ** (i / 32)));
    const table = Int32Array.from([2, 0, 3]);
    const slots = Int32Array.from({ length: total }, (_, p) => table[Math.floor(p / 16)] * 16 + (p % 16));
    const positions = Int32Array.from({ length: total }, (_, p) => p);
    const run = (chunks: number[]) => {
      const cacheLength = 4 * 16 * 2 * 64;
      const kCache = new Float32Array(cacheLength);
      const vCache = new Float32Array(cacheLength);
      const outs: Float32Array[] = [];
      let done = 0;
      for (const n of chunks) {
        const q = new Float32Array(n * 4 * 64);
        const rowWidth = 8 * 64;
        const part = qkv.subarray(done * rowWidth, (done + n) * rowWidth);
        const at = (a: Int32Array) => a.subarray(done, done + n);
        nativeAttentionKernels.ropeAndCacheWrite(part, n, shape, at(positions), invFreq, q, kCache, vCache, at(slots));
        const out = new Float32Array(q.length);
        const batch = {
          qStart: Int32Array.from([0, n]),
          kvLen: Int32Array.from([done + n]),
          blockTables: table,
          blockTableStart: Int32Array.from([0]),
          numSeqs: 1,
        };
        nativeAttentionKernels.pagedAttention(q, kCache, vCache, out, shape, batch);
        outs.push(out);
        done += n;
      }
      const all = new Float32Array(total * 4 * 64);
      let offset = 0;
      for (const o of outs) {
        all.set(o, offset);
        offset += o.length;
      }
      return all;
    };
    for (const isa of isas) {
      setIsa(isa);
      assertBitwise(run([5, 11, 1, 1, 19]), run([total]), `${isa}: chunked vs one-shot`);
    }
  });
});

describe('attention: bad arguments throw, never crash', () => {
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 8, blockSize: 4 };
  const cache = () => new Float32Array(3 * 4 * 2 * 8);
  const good = () => ({
    q: new Float32Array(2 * 32),
    out: new Float32Array(2 * 32),
    batch: {
      qStart: Int32Array.from([0, 2]),
      kvLen: Int32Array.from([5]),
      blockTables: Int32Array.from([1, 2]),
      blockTableStart: Int32Array.from([0]),
      numSeqs: 1,
    } as AttentionBatch,
  });
  const badAttention: [string, (g: ReturnType<typeof good>) => [AttentionShape, AttentionBatch, Float32Array]][] = [
    ['Hq not a multiple of Hkv', (g) => [{ ...shape, numHeads: 3 }, g.batch, g.q]],
    ['zero head dim', (g) => [{ ...shape, headDim: 0 }, g.batch, g.q]],
    ['block id out of the cache', (g) => [shape, { ...g.batch, blockTables: Int32Array.from([1, 3]) }, g.q]],
    ['negative block id', (g) => [shape, { ...g.batch, blockTables: Int32Array.from([-1, 0]) }, g.q]],
    ['block table too short', (g) => [shape, { ...g.batch, blockTables: Int32Array.from([1]) }, g.q]],
    ['kvLen below qLen', (g) => [shape, { ...g.batch, kvLen: Int32Array.from([1]) }, g.q]],
    ['qStart decreasing', (g) => [shape, { ...g.batch, qStart: Int32Array.from([2, 0]) }, g.q]],
    ['qStart too short', (g) => [shape, { ...g.batch, qStart: Int32Array.from([0]) }, g.q]],
    ['q too short', (g) => [shape, g.batch, new Float32Array(10)]],
    ['fractional numSeqs', (g) => [shape, { ...g.batch, numSeqs: 0.5 }, g.q]],
  ];
  for (const [name, k] of [
    ['reference', referenceAttentionKernels],
    ['native', nativeAttentionKernels],
  ] as const) {
    for (const [what, make] of badAttention) {
      test(`${name} pagedAttention: ${what}`, () => {
        const g = good();
        const [s, b, q] = make(g);
        assert.throws(() => k.pagedAttention(q, cache(), cache(), g.out, s, b), RangeError);
      });
    }
    test(`${name} pagedAttention: caches of different or ragged lengths`, () => {
      const g = good();
      assert.throws(() => k.pagedAttention(g.q, cache(), new Float32Array(8), g.out, shape, g.batch), RangeError);
      const ragged = new Float32Array(3 * 64 + 1);
      assert.throws(() => k.pagedAttention(g.q, ragged, ragged, g.out, shape, g.batch), RangeError);
    });
    test(`${name} ropeAndCacheWrite: odd head dim, slot out of range, short buffers`, () => {
      const qkv = new Float32Array(2 * 8 * 8);
      const inv = new Float32Array(4);
      const pos = Int32Array.from([0, 1]);
      const qOut = new Float32Array(2 * 32);
      const rope = (s: AttentionShape, slots: Int32Array, q = qkv, freq = inv, t = 2) =>
        k.ropeAndCacheWrite(q, t, s, pos, freq, qOut, cache(), cache(), slots);
      assert.throws(() => rope({ ...shape, headDim: 7 }, Int32Array.from([0, 1])), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0, 12])), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0, -2])), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0])), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0, 1]), new Float32Array(5)), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0, 1]), qkv, new Float32Array(3)), RangeError);
      assert.throws(() => rope(shape, Int32Array.from([0, 1]), qkv, inv, -1), RangeError);
      rope(shape, Int32Array.from([11, -1]));
      rope(shape, new Int32Array(0), qkv, inv, 0);
    });
  }
  test('native: wrong array types are TypeErrors', () => {
    const g = good();
    const asAny = g.q as unknown as Float32Array;
    assert.throws(
      () =>
        nativeAttentionKernels.pagedAttention(
          new Float64Array(64) as unknown as Float32Array,
          cache(),
          cache(),
          g.out,
          shape,
          g.batch,
        ),
      TypeError,
    );
    assert.throws(
      () =>
        nativeAttentionKernels.pagedAttention(asAny, cache(), cache(), g.out, shape, {
          ...g.batch,
          kvLen: [5] as unknown as Int32Array,
        }),
      TypeError,
    );
  });
});

describe('pagedAttention: sliding window (Mistral)', () => {
  for (const window of [1, 5, 16, 40]) {
    test(`window ${window}: native under every ISA matches the reference; prefill chunk equals decode bitwise`, () => {
      const shape = { numHeads: 4, numKvHeads: 2, headDim: 16, blockSize: 4, slidingWindow: window };
      const r = rng(window * 31);
      const specs: SeqSpec[] = [
        { qLen: 1, kvLen: 57 },
        { qLen: 23, kvLen: 23 },
        { qLen: 7, kvLen: 50 },
      ];
      const ids = specs.map((_, i) => i);
      const scene = makeScene(
        r,
        shape,
        specs.map((s) => s.kvLen),
      );
      const expected = attend(referenceAttentionKernels, scene, ids, specs);
      const full = attend(referenceAttentionKernels, { ...scene, shape: { ...shape, slidingWindow: 0 } }, ids, specs);
      if (window < 23) assert.ok(maxAbsDiff(expected, full) > 1e-4, 'the window changes the result');
      for (const isa of isas) {
        setIsa(isa);
        const got = attend(nativeAttentionKernels, scene, ids, specs);
        assert.ok(maxAbsDiff(got, expected) < 2e-5, `${isa}: native differs from the reference`);
        // the last query of the 23-token prefill, recomputed alone as a decode step
        const decode = attend(nativeAttentionKernels, scene, [1], [{ qLen: 1, kvLen: 23 }]);
        assertBitwise(decode, rowsOf(got, shape, 1 + 22, 1), `${isa}: decode vs prefill`);
      }
    });
  }
});

describe('pagedAttention: scale and soft-capping (Gemma)', () => {
  const cases = [
    { numHeads: 8, numKvHeads: 4, headDim: 256, blockSize: 16, scale: 256 ** -0.5, softcap: 50 },
    { numHeads: 6, numKvHeads: 2, headDim: 72, blockSize: 4, scale: 0.3, softcap: 5, slidingWindow: 9 },
    { numHeads: 3, numKvHeads: 3, headDim: 13, blockSize: 1, scale: 0.5, softcap: 2 },
    { numHeads: 4, numKvHeads: 1, headDim: 40, blockSize: 16, scale: 0.05 },
    { numHeads: 2, numKvHeads: 1, headDim: 7, blockSize: 4, softcap: 1, slidingWindow: 20 },
  ];
  for (const shape of cases) {
    test(`D=${shape.headDim} Hq/Hkv=${shape.numHeads}/${shape.numKvHeads} scale=${shape.scale?.toFixed(3)} softcap=${shape.softcap} window=${shape.slidingWindow ?? 0}: native under every ISA matches the reference`, () => {
      const r = rng(shape.headDim * 7 + (shape.softcap ?? 0));
      const specs: SeqSpec[] = [
        { qLen: 1, kvLen: 1 },
        { qLen: 1, kvLen: r.int(20, 90) },
        { qLen: r.int(5, 21), kvLen: 40 },
        { qLen: 17, kvLen: 17 },
      ];
      const ids = specs.map((_, i) => i);
      const scene = makeScene(
        r,
        shape,
        specs.map((s) => s.kvLen),
      );
      // Scores of up to ~±10 with these q, k and scales: the cap changes the result.
      const expected = attend(referenceAttentionKernels, scene, ids, specs);
      const uncapped = { ...scene, shape: { ...shape, softcap: undefined } };
      if (shape.softcap !== undefined && shape.softcap < 10)
        assert.ok(maxAbsDiff(expected, attend(referenceAttentionKernels, uncapped, ids, specs)) > 1e-3);
      for (const isa of isas) {
        setIsa(isa);
        const got = attend(nativeAttentionKernels, scene, ids, specs);
        const diff = maxAbsDiff(got, expected);
        assert.ok(diff < 2e-5, `${isa}: max |native - reference| = ${diff}`);
        const decode = attend(nativeAttentionKernels, scene, [3], [{ qLen: 1, kvLen: 17 }]);
        assertBitwise(decode, rowsOf(got, shape, 1 + 1 + specs[2].qLen + 16, 1), `${isa}: decode vs prefill`);
      }
    });
  }

  test('scale 1/√D given explicitly gives the default bits; a huge softcap is no cap', () => {
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 24, blockSize: 4 };
    const scene = makeScene(rng(3), shape, [30]);
    const specs = [{ qLen: 6, kvLen: 30 }];
    for (const isa of isas) {
      setIsa(isa);
      const plain = attend(nativeAttentionKernels, scene, [0], specs);
      const explicit = attend(
        nativeAttentionKernels,
        { ...scene, shape: { ...shape, scale: 1 / Math.sqrt(24) } },
        [0],
        specs,
      );
      assertBitwise(explicit, plain, `${isa}: explicit scale`);
      const capped = attend(nativeAttentionKernels, { ...scene, shape: { ...shape, softcap: 1e6 } }, [0], specs);
      assert.ok(maxAbsDiff(capped, plain) < 1e-6, `${isa}: softcap 1e6`);
    }
  });

  for (const [name, k] of [
    ['reference', referenceAttentionKernels],
    ['native', nativeAttentionKernels],
  ] as const) {
    test(`${name}: a scale ≤ 0 or not finite, a negative or infinite softcap are RangeErrors`, () => {
      const shape = { numHeads: 2, numKvHeads: 1, headDim: 8, blockSize: 4 };
      const scene = makeScene(rng(4), shape, [5]);
      for (const bad of [
        { scale: 0 },
        { scale: -1 },
        { scale: Number.NaN },
        { scale: Number.POSITIVE_INFINITY },
        { softcap: -1 },
        { softcap: Number.POSITIVE_INFINITY },
        { softcap: Number.NaN },
      ])
        assert.throws(
          () => attend(k, { ...scene, shape: { ...shape, ...bad } }, [0], [{ qLen: 2, kvLen: 5 }]),
          RangeError,
          JSON.stringify(bad),
        );
    });
  }
});

/** The scene with its caches rounded to bf16: the Uint16Array patterns and their exact f32 widening. */
function bf16Scene(scene: Scene) {
  const kBits = Uint16Array.from(scene.kCache, f32ToBf16);
  const vBits = Uint16Array.from(scene.vCache, f32ToBf16);
  const widened: Scene = {
    ...scene,
    kCache: Float32Array.from(kBits, bf16ToF32),
    vCache: Float32Array.from(vBits, bf16ToF32),
  };
  const attendBf16 = (k: AttentionKernels, seqIds: number[], specs: SeqSpec[]) => {
    const batch = makeBatch(scene, seqIds, specs);
    const q = queryRows(scene.shape, seqIds, specs);
    const out = new Float32Array(q.length).fill(Number.NaN);
    k.pagedAttention(q, kBits, vBits, out, scene.shape, batch);
    return out;
  };
  return { kBits, vBits, widened, attendBf16 };
}

describe('bf16 KV cache', () => {
  const shapes: AttentionShape[] = [
    { numHeads: 8, numKvHeads: 2, headDim: 64, blockSize: 16 },
    { numHeads: 9, numKvHeads: 3, headDim: 80, blockSize: 4, slidingWindow: 30 },
    { numHeads: 4, numKvHeads: 4, headDim: 13, blockSize: 1, scale: 0.4, softcap: 3 },
    { numHeads: 16, numKvHeads: 8, headDim: 256, blockSize: 16, scale: 0.0625, softcap: 50 },
  ];
  for (const shape of shapes) {
    test(`pagedAttention D=${shape.headDim} Hq/Hkv=${shape.numHeads}/${shape.numKvHeads}: native bf16 = native f32 on the rounded values (bitwise, every ISA), = reference (2e-5), ≈ unrounded f32 (1e-2)`, () => {
      const r = rng(shape.headDim * 3 + shape.numHeads);
      const specs: SeqSpec[] = [
        { qLen: 1, kvLen: 1 },
        { qLen: 1, kvLen: r.int(40, 150) },
        { qLen: r.int(3, 20), kvLen: 60 },
        { qLen: 19, kvLen: 19 },
      ];
      const ids = specs.map((_, i) => i);
      const scene = makeScene(
        r,
        shape,
        specs.map((s) => s.kvLen),
      );
      const b = bf16Scene(scene);
      const reference = b.attendBf16(referenceAttentionKernels, ids, specs);
      assertBitwise(
        reference,
        attend(referenceAttentionKernels, b.widened, ids, specs),
        'reference: bf16 = widened f32',
      );
      // bf16 rounding of k and v (relative 2^-9) moves outputs of these scenes by about 4e-3 (bound 1e-2).
      const unrounded = attend(referenceAttentionKernels, scene, ids, specs);
      const loose = maxAbsDiff(reference, unrounded);
      assert.ok(loose < 1e-2 && loose > 0, `bf16 vs unrounded f32: ${loose}`);
      for (const isa of isas) {
        setIsa(isa);
        const got = b.attendBf16(nativeAttentionKernels, ids, specs);
        assertBitwise(got, attend(nativeAttentionKernels, b.widened, ids, specs), `${isa}: bf16 vs widened f32`);
        assert.ok(maxAbsDiff(got, reference) < 2e-5, `${isa}: ${maxAbsDiff(got, reference)}`);
        const decode = b.attendBf16(nativeAttentionKernels, [3], [{ qLen: 1, kvLen: 19 }]);
        assertBitwise(decode, rowsOf(got, shape, specs[0].qLen + 1 + specs[2].qLen + 18, 1), `${isa}: decode`);
      }
    });
  }

  for (const headDim of [8, 64, 80, 128]) {
    test(`ropeAndCacheWrite D=${headDim}: a bf16 cache holds f32ToBf16 of what an f32 cache gets (reference and every ISA)`, () => {
      const shape = { numHeads: 6, numKvHeads: 2, headDim, blockSize: 4 };
      const r = rng(headDim + 11);
      const numTokens = 21;
      const c = ropeCase(r, shape, numTokens, 7);
      for (const k of [referenceAttentionKernels, nativeAttentionKernels]) {
        for (const isa of k === nativeAttentionKernels ? isas : ['reference']) {
          if (k === nativeAttentionKernels) setIsa(isa as (typeof isas)[number]);
          const f32 = runRope(k, shape, c, numTokens);
          const qOut = new Float32Array(numTokens * shape.numHeads * headDim);
          const kCache = new Uint16Array(c.cacheLength).fill(0x1234);
          const vCache = new Uint16Array(c.cacheLength).fill(0x1234);
          k.ropeAndCacheWrite(c.qkv, numTokens, shape, c.positions, c.invFreq, qOut, kCache, vCache, c.slotMapping);
          assertBitwise(qOut, f32.qOut, `${isa}: q`);
          const width = shape.numKvHeads * headDim;
          const written = new Set(Array.from(c.slotMapping).filter((s) => s >= 0));
          for (let row = 0; row < c.cacheLength / width; row++) {
            for (let i = row * width; i < (row + 1) * width; i++) {
              const [kWant, vWant] = written.has(row)
                ? [f32ToBf16(f32.kCache[i]), f32ToBf16(f32.vCache[i])]
                : [0x1234, 0x1234];
              if (kCache[i] !== kWant || vCache[i] !== vWant) assert.fail(`${isa}: row ${row}, element ${i}`);
            }
          }
        }
      }
    });
  }

  test('native: a prefill written to a bf16 cache in chunks attends exactly like one written at once (every ISA)', () => {
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 48, blockSize: 8 };
    const r = rng(78);
    const total = 29;
    const rowWidth = 8 * 48;
    const qkv = r.f32(total * rowWidth, 2);
    const invFreq = Float32Array.from({ length: 24 }, (_, i) => Math.fround(1 / 10000 ** (i / 24)));
    const table = Int32Array.from([3, 1, 0, 2]);
    const slots = Int32Array.from({ length: total }, (_, p) => table[Math.floor(p / 8)] * 8 + (p % 8));
    const positions = Int32Array.from({ length: total }, (_, p) => p);
    const run = (chunks: number[]) => {
      const kCache = new Uint16Array(4 * 8 * 2 * 48);
      const vCache = new Uint16Array(kCache.length);
      const all = new Float32Array(total * 4 * 48);
      let done = 0;
      for (const n of chunks) {
        const q = new Float32Array(n * 4 * 48);
        const at = (a: Int32Array) => a.subarray(done, done + n);
        const part = qkv.subarray(done * rowWidth, (done + n) * rowWidth);
        nativeAttentionKernels.ropeAndCacheWrite(part, n, shape, at(positions), invFreq, q, kCache, vCache, at(slots));
        const out = new Float32Array(q.length);
        nativeAttentionKernels.pagedAttention(q, kCache, vCache, out, shape, {
          qStart: Int32Array.from([0, n]),
          kvLen: Int32Array.from([done + n]),
          blockTables: table,
          blockTableStart: Int32Array.from([0]),
          numSeqs: 1,
        });
        all.set(out, done * 4 * 48);
        done += n;
      }
      return all;
    };
    for (const isa of isas) {
      setIsa(isa);
      assertBitwise(run([4, 13, 1, 11]), run([total]), `${isa}: chunked vs one-shot`);
    }
  });

  for (const [name, k] of [
    ['reference', referenceAttentionKernels],
    ['native', nativeAttentionKernels],
  ] as const) {
    test(`${name}: caches of different dtypes, or of another array type, are TypeErrors`, () => {
      const shape = { numHeads: 2, numKvHeads: 1, headDim: 8, blockSize: 4 };
      const f32 = new Float32Array(2 * 4 * 8);
      const bf16 = new Uint16Array(2 * 4 * 8);
      const batch = {
        qStart: Int32Array.from([0, 1]),
        kvLen: Int32Array.from([3]),
        blockTables: Int32Array.from([1]),
        blockTableStart: Int32Array.from([0]),
        numSeqs: 1,
      };
      const q = new Float32Array(16);
      const out = new Float32Array(16);
      assert.throws(() => k.pagedAttention(q, f32, bf16, out, shape, batch), TypeError);
      assert.throws(() => k.pagedAttention(q, bf16, f32, out, shape, batch), TypeError);
      const int16 = new Int16Array(64) as unknown as Uint16Array;
      assert.throws(() => k.pagedAttention(q, int16, int16, out, shape, batch), TypeError);
      const qkv = new Float32Array(4 * 8);
      const rope = (kc: Float32Array | Uint16Array, vc: Float32Array | Uint16Array) =>
        k.ropeAndCacheWrite(qkv, 1, shape, Int32Array.from([0]), new Float32Array(4), q, kc, vc, Int32Array.from([2]));
      assert.throws(() => rope(f32, bf16), TypeError);
      assert.throws(() => rope(bf16, f32), TypeError);
      rope(bf16, new Uint16Array(64));
      k.pagedAttention(q, bf16, new Uint16Array(64), out, shape, batch);
      assert.throws(() => rope(bf16, new Uint16Array(63)), RangeError);
    });
  }
});

describe('ropeAndCacheWrite: partial rotary (rotaryDim < headDim)', () => {
  /** qkv restricted to the first `r` dims of every head, as rows of a headDim-r model. */
  function firstDims(qkv: Float32Array, heads: number, d: number, r: number) {
    const rows = qkv.length / (heads * d);
    const out = new Float32Array(rows * heads * r);
    for (let i = 0; i < rows * heads; i++) out.set(qkv.subarray(i * d, i * d + r), i * r);
    return out;
  }

  for (const [headDim, rotaryDim] of [
    [80, 32],
    [64, 16],
    [7, 2],
    [96, 96],
  ]) {
    test(`D=${headDim} R=${rotaryDim}: the first R dims as a rope of head dim R, the rest copied; native under every ISA, f32 and bf16 caches`, () => {
      const shape = { numHeads: 6, numKvHeads: 2, headDim, blockSize: 4, rotaryDim };
      const heads = 6 + 2 * 2;
      const r = rng(headDim * 13 + rotaryDim);
      const numTokens = 19;
      const c = ropeCase(r, { ...shape, headDim: rotaryDim }, numTokens, 6); // invFreq [R/2], slots, positions
      const qkv = r.f32(numTokens * heads * headDim, 3);
      const full = { ...c, qkv, cacheLength: c.cacheLength * (headDim / rotaryDim) };
      const expected = runRope(referenceAttentionKernels, shape, full, numTokens);
      // The first R dims of each head are exactly a head-dim-R rope of those dims; the rest are the input's.
      const small = runRope(
        referenceAttentionKernels,
        { ...shape, headDim: rotaryDim, rotaryDim: undefined },
        { ...c, qkv: firstDims(qkv, heads, headDim, rotaryDim) },
        numTokens,
      );
      assertBitwise(firstDims(expected.qOut, 6, headDim, rotaryDim), small.qOut, 'q, first R dims');
      assertBitwise(firstDims(expected.kCache, 2, headDim, rotaryDim), small.kCache, 'k, first R dims');
      for (let t = 0; t < numTokens; t++)
        for (let h = 0; h < 6; h++)
          for (let i = rotaryDim; i < headDim; i++)
            assert.equal(expected.qOut[(t * 6 + h) * headDim + i], qkv[(t * heads + h) * headDim + i]);
      if (rotaryDim === headDim)
        assertBitwise(
          runRope(referenceAttentionKernels, { ...shape, rotaryDim: undefined }, full, numTokens).qOut,
          expected.qOut,
          'R = D is the default',
        );
      for (const isa of isas) {
        setIsa(isa);
        const got = runRope(nativeAttentionKernels, shape, full, numTokens);
        assert.ok(maxAbsDiff(got.qOut, expected.qOut) <= 1e-6, `${isa}: q`);
        assert.ok(maxAbsDiff(got.kCache, expected.kCache) <= 1e-6, `${isa}: k`);
        assertBitwise(got.vCache, expected.vCache, `${isa}: v`);
        const kBits = new Uint16Array(full.cacheLength);
        const vBits = new Uint16Array(full.cacheLength);
        const qOut = new Float32Array(got.qOut.length);
        nativeAttentionKernels.ropeAndCacheWrite(
          qkv,
          numTokens,
          shape,
          c.positions,
          c.invFreq,
          qOut,
          kBits,
          vBits,
          c.slotMapping,
        );
        const written = new Set(Array.from(c.slotMapping).filter((s) => s >= 0));
        const width = 2 * headDim;
        for (const row of written)
          for (let i = row * width; i < (row + 1) * width; i++)
            if (kBits[i] !== f32ToBf16(got.kCache[i])) assert.fail(`${isa}: bf16 k at ${i}`);
      }
    });
  }

  for (const [name, k] of [
    ['reference', referenceAttentionKernels],
    ['native', nativeAttentionKernels],
  ] as const) {
    test(`${name}: rotaryDim odd, 0, past headDim, or invFreq shorter than rotaryDim/2 are RangeErrors`, () => {
      const shape = { numHeads: 1, numKvHeads: 1, headDim: 8, blockSize: 4 };
      const qkv = new Float32Array(3 * 8);
      const rope = (rotaryDim: number, invFreq: Float32Array) =>
        k.ropeAndCacheWrite(
          qkv,
          1,
          { ...shape, rotaryDim },
          Int32Array.from([0]),
          invFreq,
          new Float32Array(8),
          new Float32Array(32),
          new Float32Array(32),
          Int32Array.from([1]),
        );
      for (const bad of [3, 0, 10, -2, 2.5])
        assert.throws(() => rope(bad, new Float32Array(4)), RangeError, `rotaryDim ${bad}`);
      assert.throws(() => rope(6, new Float32Array(2)), RangeError);
      rope(6, new Float32Array(3));
      rope(8, new Float32Array(4));
    });
  }
});
