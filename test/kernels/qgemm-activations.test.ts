/**
 * x's int8 blocks are llama.cpp's, as its x86 AVX2 build makes them (qgemm.h's Semantics): id = 127 / max|x|,
 * q = round half to even (_mm256_round_ps, not the reference quantizer's roundf), Q8_0's scale stored as f16
 * (block_q8_0.d), Q4_K's as 1 / id (block_q8_K.d). Probe weights read each q back: weight row n holds a single
 * 1 at position n (block scale 1), so y[n] = q[n] · dx of n's block, on the reference and on every native ISA.
 */
import { describe, test } from 'node:test';
import { f16ToF32, f32ToF16 } from '../../src/kernels/dtype.ts';
import type { BlockDType, Kernels, WeightMatrix } from '../../src/kernels/types.ts';
import { assertBitwise, nativeImplementations, referenceKernels, restoreDefaults } from './implementations.ts';

const f = Math.fround;
const toF16 = (v: number) => f16ToF32(f32ToF16(f(v)));

/** W [k, k]: row n is 1 at column n and 0 elsewhere; every block scale 1 (Q4_K: sc 1, dmin and m 0). */
function probe(type: BlockDType, k: number): WeightMatrix {
  const one = f32ToF16(1);
  if (type === 'q8_0') {
    const data = new Uint8Array(k * (k / 32) * 34);
    for (let n = 0; n < k; n++) {
      for (let b = 0; b < k / 32; b++) {
        const at = (n * (k / 32) + b) * 34;
        data[at] = one & 0xff;
        data[at + 1] = one >> 8;
        if (b === n >> 5) data[at + 2 + (n & 31)] = 1;
      }
    }
    return { dtype: type, rows: k, cols: k, data };
  }
  const data = new Uint8Array(k * (k / 256) * 144);
  for (let n = 0; n < k; n++) {
    for (let B = 0; B < k / 256; B++) {
      const at = (n * (k / 256) + B) * 144;
      data[at] = one & 0xff;
      data[at + 1] = one >> 8;
      for (const s of [0, 1, 2, 3, 8, 9, 10, 11]) data[at + 4 + s] = 1; // sc_j = 1, m_j = 0
      if (B === n >> 8) {
        const p = n & 255;
        data[at + 16 + (p >> 6) * 32 + (p & 31)] = 1 << (((p >> 5) & 1) * 4);
      }
    }
  }
  return { dtype: type, rows: k, cols: k, data };
}

interface Block {
  what: string;
  x: number[]; // the block's first values (the rest 0)
  q: number[]; // their expected int8 values
  dx: number; // the expected block scale
}

function check(type: BlockDType, blocks: Block[]) {
  const size = type === 'q8_0' ? 32 : 256;
  const k = blocks.length * size;
  const x = new Float32Array(k);
  const want = new Float32Array(k);
  blocks.forEach((b, i) => {
    x.set(b.x, i * size);
    b.q.forEach((q, j) => {
      want[i * size + j] = q === 0 ? 0 : f(q * b.dx);
    });
  });
  const w = probe(type, k);
  const run = (kernels: Kernels) => {
    const y = new Float32Array(k);
    kernels.gemm(x, kernels.packWeight(w), y, 1);
    return y;
  };
  assertBitwise(run(referenceKernels), want, `reference ${type}`);
  for (const impl of nativeImplementations()) {
    impl.activate();
    assertBitwise(run(impl.kernels), want, `${impl.name} ${type}`);
  }
  restoreDefaults();
}

// Each x · id of these is a tie (max 127: id = 1); roundf would give 3, 4, -3, -4, 1, -1, 2, 127, -127.
const TIES = [127, 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -126.5];
const TIES_Q = [127, 2, 4, -2, -4, 0, 0, 2, 126, -126];
// A max for which f32(127 / max) = 36.970749 and f32(1 / f32(max / 127)) = 36.970753: the second value
// rounds 1.4999999 up to 2.
const ID_MAX = 3.435148000717163;
const ID_X = 0.04057261347770691;

describe('qgemm: x quantized as llama.cpp quantizes activations', () => {
  test('q8_0: ties to even, the scale rounded to f16, 127 / max, zero blocks', () => {
    check('q8_0', [
      { what: 'ties', x: TIES, q: TIES_Q, dx: 1 },
      // 1 / 127 is no f16: 1032 · 2^-17 is the nearest (0.0078740157 → 0.0078735352).
      { what: 'scale not an f16', x: [1, 0.5, -0.25], q: [127, 64, -32], dx: 1032 * 2 ** -17 },
      { what: '127 / max, not 1 / (max / 127)', x: [ID_MAX, ID_X], q: [127, 1], dx: toF16(ID_MAX / 127) },
      // 1e-4 / 127 is an f16 subnormal: 13 · 2^-24.
      { what: 'subnormal f16 scale', x: [1e-4], q: [127], dx: 13 * 2 ** -24 },
      { what: 'all zero', x: [0, -0, 0], q: [0, 0, 0], dx: 0 },
      // 127 / 1e-40 overflows f32: the block is all zero, as its f16 scale is.
      { what: 'f32 subnormal max', x: [1e-40, -5e-41], q: [0, 0], dx: 0 },
    ]);
  });

  test('q4_k: ties to even, the scale 1 / (127 / max) in f32, 127 / max, zero blocks', () => {
    // For this max, f32(1 / f32(127 / max)) = 0.029466646 while f32(max / 127) = 0.029466644.
    const max = 3.7422637939453125;
    check('q4_k', [
      { what: 'ties, both signs at the max', x: [...TIES, -127], q: [...TIES_Q, -127], dx: 1 },
      { what: '127 / max', x: [ID_MAX, ID_X], q: [127, 1], dx: f(1 / f(127 / ID_MAX)) },
      { what: 'scale 1 / id', x: [-max, max / 4], q: [-127, 32], dx: 0.029466645792126656 },
      { what: 'all zero', x: [0], q: [0], dx: 0 },
    ]);
  });
});
