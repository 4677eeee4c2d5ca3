/**
 * The AMX-INT8 Q4_K GEMM (native/src/cpu/qgemm_amx.cpp: batches of 24 or more x rows where the CPU has AMX-INT8):
 * bit for bit the reference and the VNNI kernels (qgemm.h's Semantics) — on odd N (a last panel of one group, rows
 * past N), M across its 32-row tile pairs and 128-row blocks, several super-blocks, bias and accumulate, raw blocks
 * (every bit pattern of values, scales and mins) and the integer extremes (q = 15, sc = m = 63, x at ±127); the
 * same bits on 1 thread and the pool; and a row's result does not depend on M or on which path its batch took.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToF16 } from '../../src/kernels/dtype.ts';
import { setIsa } from '../../src/kernels/native/addon.ts';
import { qgemmAmxActive, setQgemmAmx } from '../../src/kernels/native/qgemm.ts';
import { nativeKernels } from '../../src/kernels/native.ts';
import type { WeightMatrix } from '../../src/kernels/types.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { assertBitwise, referenceKernels, restoreDefaults, rng, withThreads } from './implementations.ts';
import { rawWeight, runGemm } from './qgemm-fixtures.ts';

const amxHere = (() => {
  setIsa('avx512');
  const on = setQgemmAmx(true);
  restoreDefaults();
  return on;
})();
const skip = amxHere ? false : 'this CPU (or its kernel) gives no AMX-INT8 with AVX-512 VNNI';

function restore() {
  setQgemmAmx(true);
  restoreDefaults();
}

/** The native result with AMX allowed (asserting it is in use) and with the VNNI kernels only. */
function bothPaths(
  w: WeightMatrix,
  x: Float32Array,
  m: number,
  y0: Float32Array,
  bias?: Float32Array,
  accumulate = false,
) {
  assert.ok(setQgemmAmx(true));
  const amx = runGemm(nativeKernels, w, x, m, y0, bias, accumulate);
  assert.equal(setQgemmAmx(false), false);
  const vnni = runGemm(nativeKernels, w, x, m, y0, bias, accumulate);
  setQgemmAmx(true);
  return { amx, vnni };
}

describe('qgemm on AMX-INT8: the reference and the VNNI kernels, bit for bit', { skip }, () => {
  after(restore);
  const cases = [
    { m: 32, n: 8, blocks: 1, bias: false, accumulate: false },
    { m: 33, n: 9, blocks: 2, bias: true, accumulate: false },
    { m: 47, n: 23, blocks: 3, bias: false, accumulate: true },
    { m: 64, n: 16, blocks: 1, bias: true, accumulate: true },
    { m: 129, n: 67, blocks: 2, bias: true, accumulate: false },
    { m: 300, n: 41, blocks: 5, bias: false, accumulate: true },
  ];
  for (const [ci, c] of cases.entries()) {
    const k = 256 * c.blocks;
    test(`M=${c.m} K=${k} N=${c.n}${c.bias ? ' +bias' : ''}${c.accumulate ? ' accumulate' : ''}`, () => {
      setIsa('avx512bf16');
      for (const [label, w] of [
        ['quantized', weightFormat('q4_k').encode(rng(500 + ci).f32(c.n * k, 0.5), c.n, k)],
        ['raw blocks', rawWeight('q4_k', c.n, k, 600 + ci)],
      ] as const) {
        const r = rng(700 + ci);
        const x = r.f32(c.m * k, 2);
        const y0 = r.f32(c.m * c.n);
        const bias = c.bias ? r.f32(c.n) : undefined;
        const want = runGemm(referenceKernels, w, x, c.m, y0, bias, c.accumulate);
        const { amx, vnni } = bothPaths(w, x, c.m, y0, bias, c.accumulate);
        assertBitwise(amx, want, `amx ${label}`);
        assertBitwise(vnni, want, `vnni ${label}`);
      }
    });
  }

  test('integer extremes: q = 15, sc = m = 63, x at ±127 in every block', () => {
    setIsa('avx512bf16');
    const n = 19;
    const k = 512;
    const data = new Uint8Array(weightFormat('q4_k').bytes(n, k)).fill(0xff); // q = 15, 6-bit sc and m = 63
    for (let at = 0; at < data.length; at += 144) {
      const row = Math.floor(at / 288);
      const d = f32ToF16(row === 3 ? 65504 : 0.25);
      const dmin = f32ToF16(row === 5 ? 2 ** -24 : 0.125);
      data.set([d & 0xff, d >> 8, dmin & 0xff, dmin >> 8], at);
    }
    const w: WeightMatrix = { dtype: 'q4_k', rows: n, cols: k, data };
    const m = 40;
    const x = new Float32Array(m * k);
    for (let row = 0; row < m; row++)
      for (let i = 0; i < k; i++) x[row * k + i] = row % 3 === 0 ? 1 : row % 3 === 1 ? -1 : i % 2 ? 1 : -1;
    const want = runGemm(referenceKernels, w, x, m, new Float32Array(m * n));
    assert.ok(want.every(Number.isFinite));
    const { amx, vnni } = bothPaths(w, x, m, new Float32Array(m * n));
    assertBitwise(amx, want, 'amx');
    assertBitwise(vnni, want, 'vnni');
  });

  test('the pool and one thread give the same bits; a row alone (M = 1, VNNI) equals it in any AMX batch', () => {
    setIsa('avx512bf16');
    const k = 768;
    const n = 37;
    const packed = nativeKernels.packWeight(rawWeight('q4_k', n, k, 31));
    const r = rng(32);
    const row = r.f32(k, 2);
    const bias = r.f32(n);
    const alone = new Float32Array(n);
    nativeKernels.gemm(row, packed, alone, 1, bias);
    for (const m of [32, 45, 128, 161]) {
      for (const pos of new Set([0, 17, m >> 1, m - 1])) {
        const x = r.f32(m * k, 2);
        x.set(row, pos * k);
        const y = new Float32Array(m * n);
        nativeKernels.gemm(x, packed, y, m, bias);
        assertBitwise(y.subarray(pos * n, (pos + 1) * n), alone, `M=${m} row ${pos}`);
      }
    }
    const m = 200;
    const x = r.f32(m * k);
    const many = new Float32Array(m * n);
    nativeKernels.gemm(x, packed, many, m, bias);
    const one = new Float32Array(m * n);
    withThreads(1, () => nativeKernels.gemm(x, packed, one, m, bias));
    assertBitwise(many, one, '1 thread vs the pool');
  });

  test('only where the VNNI kernels run: not under the avx2 or scalar ISAs', () => {
    for (const isa of ['avx2', 'scalar'] as const) {
      setIsa(isa);
      assert.equal(qgemmAmxActive(), false, isa);
    }
    setIsa('avx512');
    assert.equal(qgemmAmxActive(), true);
    restoreDefaults();
  });
});
