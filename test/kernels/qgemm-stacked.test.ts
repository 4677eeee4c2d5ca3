/**
 * A stacked block matrix (src/kernels/stacked-weight.ts: a fused q|k|v whose parts are Q4_K, Q4_K and Q6_K)
 * runs part by part: on the reference and every native ISA its output columns equal each part's own GEMM bit
 * for bit (odd part sizes, M = 1…9, 17 and 40 (the Q4_K parts on AMX-INT8 tiles where the CPU has them, Q6_K on
 * VNNI), bias, accumulate), native equals the reference, and decoding it
 * (the CUDA backend's bf16 path, merges, checks) gives the parts' values in order.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { StackedWeight, stackBlockRows } from '../../src/kernels/stacked-weight.ts';
import type { Kernels, WeightMatrix } from '../../src/kernels/types.ts';
import { convertWeight, weightFormat } from '../../src/kernels/weight-format.ts';
import { assertBitwise, nativeImplementations, referenceKernels, restoreDefaults, rng } from './implementations.ts';

const K = 512;

function parts(): WeightMatrix[] {
  const r = rng(1);
  return [
    weightFormat('q4_k').encode(r.f32(19 * K, 0.5), 19, K),
    weightFormat('q4_k').encode(r.f32(5 * K, 0.5), 5, K),
    weightFormat('q6_k').encode(r.f32(7 * K, 0.5), 7, K),
  ];
}

/** Each part's GEMM on its own, its outputs put in the part's columns. */
function partByPart(
  kernels: Kernels,
  ps: WeightMatrix[],
  x: Float32Array,
  m: number,
  y0: Float32Array,
  bias: Float32Array | undefined,
  accumulate: boolean,
): Float32Array {
  const n = ps.reduce((s, p) => s + p.rows, 0);
  const y = y0.slice();
  let o = 0;
  for (const p of ps) {
    const yi = new Float32Array(m * p.rows);
    for (let r = 0; r < m; r++) yi.set(y0.subarray(r * n + o, r * n + o + p.rows), r * p.rows);
    kernels.gemm(x, kernels.packWeight(p), yi, m, bias?.subarray(o, o + p.rows), accumulate);
    for (let r = 0; r < m; r++) y.set(yi.subarray(r * p.rows, (r + 1) * p.rows), r * n + o);
    o += p.rows;
  }
  return y;
}

describe('stacked block matrices (q4_k | q4_k | q6_k)', () => {
  after(restoreDefaults);
  const ps = parts();
  const stacked = stackBlockRows(ps);

  test('stacking keeps the parts as they are', () => {
    assert.equal(stacked.rows, 31);
    assert.deepEqual(stacked.parts, ps);
    assert.throws(() => stackBlockRows([ps[0], weightFormat('bf16').encode(new Float32Array(K), 1, K)]), /block/);
  });

  test('outputs equal each part run alone, bit for bit, on the reference and every ISA', () => {
    const impls = [{ name: 'reference', kernels: referenceKernels, activate() {} }, ...nativeImplementations()];
    for (const m of [1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 40]) {
      const r = rng(100 + m);
      const x = r.f32(m * K, 2);
      const y0 = r.f32(m * 31);
      const bias = r.f32(31);
      const want = partByPart(referenceKernels, ps, x, m, y0, bias, true);
      for (const impl of impls) {
        impl.activate();
        const packed = impl.kernels.packWeight(stacked);
        assert.ok(packed instanceof StackedWeight);
        for (const [b, acc] of [
          [bias, true],
          [undefined, false],
        ] as const) {
          const y = y0.slice();
          impl.kernels.gemm(x, packed, y, m, b, acc);
          const alone = partByPart(impl.kernels, ps, x, m, y0, b, acc);
          assertBitwise(y, alone, `${impl.name} M=${m} ${acc ? 'bias, accumulate' : 'plain'}`);
          if (acc) assertBitwise(y, want, `${impl.name} M=${m} vs the reference`);
        }
      }
    }
  });

  test('decoded (the CUDA backend converts blocks to bf16), it is the parts’ values in order', () => {
    const want = new Float32Array(31 * K);
    let at = 0;
    for (const p of ps) {
      want.set(weightFormat(p.dtype).decode(p), at);
      at += p.rows * K;
    }
    assert.deepEqual(weightFormat(stacked.dtype).decode(stacked), want);
    const bf16 = convertWeight(stacked, 'bf16');
    assert.equal(bf16.dtype, 'bf16');
    assert.equal(bf16.parts, undefined);
    assert.deepEqual(bf16.data, weightFormat('bf16').encode(want, 31, K).data);
    assert.deepEqual(convertWeight(stacked, 'q4_k').parts, undefined);
  });

  test('a y or bias too short for the stacked rows is refused', () => {
    for (const kernels of [referenceKernels, nativeImplementations()[0].kernels]) {
      const packed = kernels.packWeight(stacked);
      assert.throws(() => kernels.gemm(new Float32Array(K), packed, new Float32Array(30), 1), TypeError);
      assert.throws(
        () => kernels.gemm(new Float32Array(K), packed, new Float32Array(31), 1, new Float32Array(30)),
        TypeError,
      );
    }
  });
});
