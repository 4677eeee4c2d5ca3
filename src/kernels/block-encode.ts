/**
 * f32 → ggml blocks, for weights quantized at load (--quantize) and for tests. Layouts as block-formats.ts.
 *
 *   Q8_0: per 32 values d = max|x| / 127 (stored f16), q = round(x / d) half away from zero — gguf-py's
 *         gguf.quants.quantize arithmetic (x / d in f32), so its blocks are bit for bit the same.
 *   Q4_K: per 32 values a scale and a min from a small grid search of the 16-level fit (ggml's make_qkx2
 *         idea, unweighted); per 256 values d, dmin (f16) so that the 6-bit scales and mins cover them;
 *         q = round((x + dmin·m) / (d·sc)) clamped to 0…15. Error bounds: test/kernels/qgemm-format.test.ts.
 *         The native addon's encoder (native/src/cpu/qgemm_encode.cpp) gives the same bytes ~19× faster;
 *         weight-format.ts uses it where the addon is built.
 *   Q6_K: per 16 values a scale that puts the largest |x| on −32 (ggml's make_qx_quants without its search);
 *         the 16 scales as int8 of d = max|scale| / 128 (stored f16, the largest on −128), q = round(x / (d·sc))
 *         clamped to −32…31, stored + 32 in ql / qh as block-formats.ts reads them (tests only; no --quantize).
 */
import { f16ToF32, f32ToF16 } from './dtype.ts';

const f = Math.fround;

/** Rounds half away from zero (C's roundf). */
function roundf(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

function writeHalf(out: Uint8Array, at: number, bits: number) {
  out[at] = bits & 0xff;
  out[at + 1] = bits >> 8;
}

/** values.length a multiple of 32 → Q8_0 blocks (34 bytes per 32 values). */
export function encodeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]));
    const d = f(amax / 127);
    writeHalf(out, b * 34, f32ToF16(d));
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : roundf(f(values[b * 32 + j] / d));
      out[b * 34 + 2 + j] = q & 0xff;
    }
  }
  return out;
}

/** The best (scale, min ≥ 0 subtracted) for 32 values on 16 levels: x ≈ scale·q − min. */
function fitSubBlock(x: Float32Array, at: number): { scale: number; min: number } {
  let lo = x[at];
  let hi = x[at];
  for (let i = 1; i < 32; i++) {
    lo = Math.min(lo, x[at + i]);
    hi = Math.max(hi, x[at + i]);
  }
  lo = Math.min(lo, 0);
  if (hi <= lo) return { scale: 0, min: -lo };
  let best = { scale: (hi - lo) / 15, min: -lo, err: Number.POSITIVE_INFINITY };
  // Try level counts around 15 (make_qkx2's rmin = -1, rdelta = 0.1, 20 steps), refitting scale and min by least squares.
  for (let step = 0; step <= 20; step++) {
    const iscale = (-1 + 0.1 * step + 15) / (hi - lo);
    let n = 0;
    let sq = 0;
    let sx = 0;
    let sqx = 0;
    let sqq = 0;
    const qs = new Array<number>(32);
    for (let i = 0; i < 32; i++) {
      const q = Math.max(0, Math.min(15, Math.round(iscale * (x[at + i] - lo))));
      qs[i] = q;
      n++;
      sq += q;
      sx += x[at + i];
      sqx += q * x[at + i];
      sqq += q * q;
    }
    const det = n * sqq - sq * sq;
    if (det <= 0) continue;
    let scale = (n * sqx - sq * sx) / det;
    let offset = (sqq * sx - sq * sqx) / det; // x ≈ scale·q + offset
    if (offset > 0) {
      offset = 0;
      scale = sqq > 0 ? sqx / sqq : 0;
    }
    let err = 0;
    for (let i = 0; i < 32; i++) {
      const e = scale * qs[i] + offset - x[at + i];
      err += e * e;
    }
    if (err < best.err && scale > 0) best = { scale, min: -offset, err };
  }
  return { scale: best.scale, min: best.min };
}

/** Packs the 8 six-bit scales and mins as get_scale_min_k4 reads them (12 bytes). */
function packScales(out: Uint8Array, at: number, sc: number[], m: number[]) {
  for (let j = 0; j < 4; j++) {
    out[at + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
    out[at + j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
    out[at + j + 8] = (sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4);
  }
}

/** values.length a multiple of 256 → Q4_K blocks (144 bytes per 256 values). */
export function encodeQ4_K(values: Float32Array): Uint8Array {
  const blocks = values.length / 256;
  const out = new Uint8Array(blocks * 144);
  for (let b = 0; b < blocks; b++) {
    const x = values;
    const base = b * 256;
    const fits = Array.from({ length: 8 }, (_, j) => fitSubBlock(x, base + j * 32));
    const maxScale = Math.max(...fits.map((s) => s.scale));
    const maxMin = Math.max(...fits.map((s) => s.min));
    const dBits = f32ToF16(maxScale / 63);
    const dminBits = f32ToF16(maxMin / 63);
    const d = f16ToF32(dBits);
    const dmin = f16ToF32(dminBits);
    const sc = fits.map((s) => (d > 0 ? Math.min(63, Math.round(s.scale / d)) : 0));
    const m = fits.map((s) => (dmin > 0 ? Math.min(63, Math.round(s.min / dmin)) : 0));
    const o = b * 144;
    writeHalf(out, o, dBits);
    writeHalf(out, o + 2, dminBits);
    packScales(out, o + 4, sc, m);
    for (let pair = 0; pair < 4; pair++) {
      for (let half = 0; half < 2; half++) {
        const j = pair * 2 + half;
        const dj = f(d * sc[j]);
        const mj = f(dmin * m[j]);
        for (let l = 0; l < 32; l++) {
          const q = dj > 0 ? Math.max(0, Math.min(15, Math.round((x[base + j * 32 + l] + mj) / dj))) : 0;
          out[o + 16 + pair * 32 + l] |= half === 0 ? q : q << 4;
        }
      }
    }
  }
  return out;
}

/** values.length a multiple of 256 → Q6_K blocks (210 bytes per 256 values). */
export function encodeQ6_K(values: Float32Array): Uint8Array {
  const blocks = values.length / 256;
  const out = new Uint8Array(blocks * 210);
  for (let b = 0; b < blocks; b++) {
    const base = b * 256;
    const o = b * 210;
    // Each sub-block's scale maps its largest-magnitude value (with its sign) to −32.
    const scales = Array.from({ length: 16 }, (_, j) => {
      let mx = 0;
      for (let i = 0; i < 16; i++)
        if (Math.abs(values[base + 16 * j + i]) > Math.abs(mx)) mx = values[base + 16 * j + i];
      return mx / -32;
    });
    const top = scales.reduce((a, s) => (Math.abs(s) > Math.abs(a) ? s : a), 0);
    const dBits = top === 0 ? 0 : f32ToF16(top / -128);
    const d = f16ToF32(dBits);
    writeHalf(out, o + 208, dBits);
    for (let j = 0; j < 16; j++) {
      const sc = d === 0 ? 0 : Math.max(-128, Math.min(127, Math.round(scales[j] / d)));
      out[o + 192 + j] = sc & 0xff;
      const step = f(d * sc);
      for (let i = 16 * j; i < 16 * j + 16; i++) {
        const q = (step === 0 ? 0 : Math.max(-32, Math.min(31, Math.round(values[base + i] / step)))) + 32;
        const h = i >> 7;
        const l = i & 31;
        const s = (i >> 5) & 3;
        out[o + 64 * h + l + (s & 1) * 32] |= s < 2 ? q & 0xf : (q & 0xf) << 4;
        out[o + 128 + 32 * h + l] |= (q >> 4) << (2 * s);
      }
    }
  }
  return out;
}
