/**
 * The q8_0, q4_k and q6_k weight formats (src/kernels/weight-format.ts): sizes, decode through the GGUF
 * dequantizers, and encode's round-trip error.
 *   q8_0: |x − decode(encode(x))| ≤ 0.6 · max|block| / 127 (half a step, plus the f16 rounding of d: 127 · 2⁻¹¹ of a step).
 *         The blocks equal gguf-py's gguf.quants.quantize bit for bit (checked on 4096 random blocks when
 *         this encoder was written; gguf-py cannot quantize Q4_K).
 *   q4_k: per 256-value super-block, |error| ≤ range / 15 (one 4-bit step of the block's whole range), and on
 *         Gaussian values the RMS error ≤ 0.1 σ (llama.cpp's Q4_K reaches about 0.07-0.09 σ).
 *   q6_k: per 16 values, |error| ≤ one step of the sub-block's scale as stored (d·|sc|) plus half a step of
 *         the super-block's largest one (d · 128 / 2: the int8 rounding of the scale, up to 32 steps of it),
 *         and on Gaussian values the RMS error ≤ 0.03 σ (6 bits: llama.cpp's Q6_K is near 0.02 σ).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BLOCK_FORMATS, dequantizeBlocks } from '../../src/kernels/block-formats.ts';
import { f16ToF32 } from '../../src/kernels/dtype.ts';
import { convertWeight, fitsFormat, isBlockDType, weightFormat } from '../../src/kernels/weight-format.ts';
import { rng } from './implementations.ts';

function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * sigma);
}

describe('block weight formats', () => {
  test('sizes are ggml blocks: 32 values in 34 bytes, 256 in 144', () => {
    assert.equal(weightFormat('q8_0').bytes(3, 64), 3 * 2 * 34);
    assert.equal(weightFormat('q4_k').bytes(5, 512), 5 * 2 * 144);
    assert.equal(weightFormat('q8_0').blockElements, 32);
    assert.equal(weightFormat('q4_k').blockBytes, 144);
    assert.equal(weightFormat('q6_k').bytes(2, 768), 2 * 3 * 210);
    assert.ok(isBlockDType('q6_k') && !fitsFormat('q6_k', 576) && fitsFormat('q6_k', 1536));
    assert.ok(isBlockDType('q4_k') && !isBlockDType('bf16'));
    assert.ok(fitsFormat('q8_0', 576) && !fitsFormat('q4_k', 576) && fitsFormat('q4_k', 1536));
    assert.throws(() => weightFormat('q4_k').encode(new Float32Array(576), 1, 576), /whole blocks of 256/);
  });

  test('decode is the GGUF dequantizer', () => {
    for (const [type, block] of [
      ['q8_0', BLOCK_FORMATS.Q8_0],
      ['q4_k', BLOCK_FORMATS.Q4_K],
      ['q6_k', BLOCK_FORMATS.Q6_K],
    ] as const) {
      const m = weightFormat(type).encode(gaussian(4 * 512, 3), 4, 512);
      assert.deepEqual(weightFormat(type).decode(m), dequantizeBlocks(block, m.data as Uint8Array));
    }
  });

  test('q8_0 round trip: within 0.6 of a step per block', () => {
    const values = gaussian(64 * 96, 5, 0.3);
    values[7] = 0;
    values.fill(0, 96, 128); // an all-zero block
    const back = weightFormat('q8_0').decode(weightFormat('q8_0').encode(values, 64, 96));
    for (let b = 0; b < values.length / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
      for (let i = 0; i < 32; i++) {
        const err = Math.abs(values[b * 32 + i] - back[b * 32 + i]);
        assert.ok(err <= (0.6 * amax) / 127, `block ${b} value ${i}: |Δ| ${err}`);
      }
    }
  });

  test('q4_k round trip: within one step of the super-block range; RMS ≤ 0.1 σ on Gaussian values', () => {
    const sigma = 0.05;
    const values = gaussian(16 * 512, 9, sigma);
    values.fill(0, 512, 768); // an all-zero super-block
    for (let i = 1024; i < 1280; i++) values[i] = Math.abs(values[i]) + 1; // all positive, far from 0
    const back = weightFormat('q4_k').decode(weightFormat('q4_k').encode(values, 16, 512));
    let sq = 0;
    for (let b = 0; b < values.length / 256; b++) {
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < 256; i++) {
        lo = Math.min(lo, values[b * 256 + i]);
        hi = Math.max(hi, values[b * 256 + i]);
      }
      for (let i = 0; i < 256; i++) {
        const err = Math.abs(values[b * 256 + i] - back[b * 256 + i]);
        assert.ok(err <= (hi - lo) / 15 + 1e-7, `super-block ${b} value ${i}: |Δ| ${err} > ${(hi - lo) / 15}`);
        if (b !== 2 && b !== 4) sq += err * err;
      }
    }
    const rms = Math.sqrt(sq / (values.length - 512));
    assert.ok(rms <= 0.1 * sigma, `RMS ${rms / sigma} σ`);
  });

  test('q6_k round trip: within a step per sub-block; RMS ≤ 0.03 σ on Gaussian values', () => {
    const sigma = 0.05;
    const values = gaussian(16 * 512, 13, sigma);
    values.fill(0, 512, 768); // an all-zero super-block
    values.fill(0, 1024, 1040); // an all-zero sub-block beside others
    values[2000] = 3; // one sub-block far larger than the rest of its super-block
    const m = weightFormat('q6_k').encode(values, 16, 512);
    const bytes = m.data as Uint8Array;
    const back = weightFormat('q6_k').decode(m);
    let sq = 0;
    for (let b = 0; b < values.length / 256; b++) {
      const d = f16ToF32(bytes[b * 210 + 208] | (bytes[b * 210 + 209] << 8));
      for (let j = 0; j < 16; j++) {
        const sc = (bytes[b * 210 + 192 + j] << 24) >> 24;
        const limit = Math.abs(d) * (Math.abs(sc) + 64) * (1 + 1e-6);
        for (let i = b * 256 + 16 * j; i < b * 256 + 16 * j + 16; i++) {
          const err = Math.abs(values[i] - back[i]);
          assert.ok(err <= limit, `value ${i}: |Δ| ${err} > ${limit}`);
          if (b !== 2 && b !== 7) sq += err * err;
        }
      }
    }
    assert.deepEqual(back.subarray(512, 768), new Float32Array(256));
    const rms = Math.sqrt(sq / (values.length - 512));
    assert.ok(rms <= 0.03 * sigma, `RMS ${rms / sigma} σ`);
  });

  test('convertWeight goes between float and block formats', () => {
    const values = gaussian(2 * 256, 11);
    const q = convertWeight({ dtype: 'f32', rows: 2, cols: 256, data: values }, 'q4_k');
    assert.equal(q.dtype, 'q4_k');
    assert.ok(q.data instanceof Uint8Array && q.data.length === 288);
    const bf = convertWeight(q, 'bf16');
    assert.equal(bf.dtype, 'bf16');
    assert.equal(bf.data.length, 512);
  });
});
