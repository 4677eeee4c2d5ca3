/** Conversions between 16-bit float bit patterns and f32 (JavaScript has no f16/bf16 arrays). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Round-to-nearest-even f32 → bf16 bits (NaN stays NaN). */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 → f16 bits, round-to-nearest-even, with subnormals and overflow to infinity. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rounded = (mant + half - 1 + ((mant >> shift) & 1)) >> shift;
    return sign | rounded;
  }
  const rounded = mant + 0xfff + ((mant >> 13) & 1);
  if (rounded & 0x800000) {
    mant = 0;
    e += 1;
    if (e >= 31) return sign | 0x7c00;
  } else {
    mant = rounded;
  }
  return sign | (e << 10) | (mant >> 13);
}

const F32_MAX = 3.4028234663852886e38;

/** Nearest integer to t, ties to even (the C library's nearbyint in the default rounding mode). */
function roundHalfEven(t: number): number {
  const f = Math.floor(t);
  const d = t - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * One row of an int8 LoRA bank (native/include/loraplex/lora.h): src[begin, begin + len) as int8 values written
 * to q[qBegin, …) (as numbers), returning the row's f32 scale s = f32(amax / 127), q = round-half-even(f32(v / s))
 * clamped to ±127, or 0 where s is 0; a NaN or infinite value makes s NaN and the row 0.
 */
export function quantizeRowInt8(src: Float32Array, begin: number, len: number, q: Float32Array, qBegin: number) {
  let amax = 0;
  let finite = true;
  for (let i = 0; i < len; i++) {
    const a = Math.abs(src[begin + i]);
    if (!(a <= F32_MAX)) finite = false;
    else if (a > amax) amax = a;
  }
  const s = finite ? Math.fround(amax / 127) : Number.NaN;
  for (let i = 0; i < len; i++) {
    const v = s > 0 ? roundHalfEven(Math.fround(src[begin + i] / s)) : 0;
    q[qBegin + i] = Math.max(-127, Math.min(127, v)) + 0; // + 0: int8 has no -0
  }
  return s;
}

export function toF32Array(dtype: 'f32' | 'f16' | 'bf16', data: Float32Array | Uint16Array): Float32Array {
  if (dtype === 'f32') return data as Float32Array;
  const out = new Float32Array(data.length);
  const src = data as Uint16Array;
  if (dtype === 'bf16') {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) outBits[i] = src[i] << 16;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]);
  }
  return out;
}
