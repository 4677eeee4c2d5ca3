/**
 * torch's CPU random numbers, bit for bit, for what PEFT draws from them: `torch.Generator("cpu").manual_seed(k)`
 * is a Mersenne Twister (MT19937, seeded with k's low 32 bits), and `tensor.uniform_(lo, hi, generator=g)` on a
 * float32 tensor fills it in row-major order with
 *
 *   u = (g() & 0xFFFFFF) · 2⁻²⁴;   value = fma(u, hi − lo, lo)   (float32; lo, hi rounded to float32 first)
 *
 * The fused multiply-add is how torch's x86 builds (AVX2 and up, the kernels PEFT users run) compile
 * `u * (to - from) + from`; a build without it rounds twice and can differ in the last bit.
 */

const N = 624;
const M = 397;

/** MT19937 as at::mt19937 (the reference algorithm): 32-bit outputs. */
export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed: number | bigint) {
    this.state[0] = Number(BigInt.asUintN(32, BigInt(seed)));
    for (let i = 1; i < N; i++) {
      const prev = this.state[i - 1] ^ (this.state[i - 1] >>> 30);
      this.state[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  next(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < N; i++) {
      const y = (s[i] & 0x80000000) | (s[(i + 1) % N] & 0x7fffffff);
      s[i] = s[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 next to `r` (a float32) in the direction of `toward`. */
function neighbour(r: number, toward: number): number {
  f32[0] = r;
  const up = toward > r === r >= 0; // away from zero in magnitude
  if (r === 0) {
    u32[0] = 1;
    return toward > 0 ? f32[0] : -f32[0];
  }
  u32[0] += up ? 1 : -1;
  return f32[0];
}

/** fma(u, d, lo) rounded once to float32, for float32 inputs (u·d is exact in f64; the sum's error is kept). */
export function fmaF32(u: number, d: number, lo: number): number {
  const p = u * d;
  const s = p + lo;
  const bp = s - lo;
  const err = p - bp + (lo - (s - bp)); // TwoSum: s + err = p + lo exactly
  const r = Math.fround(s);
  if (err === 0 || r === s) return r;
  const other = neighbour(r, s);
  if (s !== (r + other) / 2) return r; // not a tie: the f64 rounding cannot have changed the f32 one
  return err > 0 === other > r ? other : r;
}

/** `torch.empty(rows, cols).uniform_(lo, hi, generator)` as float32, drawing from `g` in place. */
export function uniformF32(g: Mt19937, count: number, lo: number, hi: number): Float32Array {
  const from = Math.fround(lo);
  const span = Math.fround(Math.fround(hi) - from);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = fmaF32((g.next() & 0xffffff) * 2 ** -24, span, from);
  return out;
}

/** torch.nn.init.kaiming_uniform_ as PEFT's VeRA calls it (fan_in = cols, gain √2): U(−√(6/fan), √(6/fan)). */
export function kaimingUniformF32(g: Mt19937, rows: number, cols: number): Float32Array {
  const bound = Math.sqrt(3) * (Math.SQRT2 / Math.sqrt(cols));
  return uniformF32(g, rows * cols, -bound, bound);
}
