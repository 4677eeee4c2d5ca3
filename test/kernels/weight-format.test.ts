/** Weight formats: sizes, and decode/encode as the bit conversions round (nearest even). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { convertWeight, weightFormat } from '../../src/kernels/weight-format.ts';

const values = Float32Array.from([0, 1, -2.5, 1 / 3, 65504, 1e-8, 2.71, -1e30]);

test('bytes of a matrix per format', () => {
  assert.equal(weightFormat('f32').bytes(3, 5), 60);
  assert.equal(weightFormat('f16').bytes(3, 5), 30);
  assert.equal(weightFormat('bf16').bytes(3, 5), 30);
});

test('encode rounds like the bit conversions; decode widens exactly', () => {
  for (const [name, round, widen] of [
    ['bf16', f32ToBf16, bf16ToF32],
    ['f16', f32ToF16, f16ToF32],
  ] as const) {
    const m = weightFormat(name).encode(values, 2, 4);
    assert.deepEqual([m.dtype, m.rows, m.cols], [name, 2, 4]);
    assert.deepEqual(m.data, Uint16Array.from(values, round));
    assert.deepEqual(weightFormat(name).decode(m), Float32Array.from(m.data, widen));
  }
  const f32 = weightFormat('f32').encode(values, 2, 4);
  assert.equal(weightFormat('f32').decode(f32).buffer, f32.data.buffer, 'f32 decodes without a copy');
});

test('convertWeight: same format is the same object; others go through f32', () => {
  const m = weightFormat('f32').encode(values, 4, 2);
  assert.equal(convertWeight(m, 'f32'), m);
  const bf16 = convertWeight(m, 'bf16');
  assert.deepEqual(bf16.data, Uint16Array.from(values, f32ToBf16));
  assert.deepEqual(
    convertWeight(bf16, 'f16').data,
    Uint16Array.from(Float32Array.from(bf16.data, bf16ToF32), f32ToF16),
  );
});
