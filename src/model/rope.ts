/**
 * RoPE inverse frequencies [headDim / 2], as transformers computes them in float32: every intermediate
 * rounded with Math.fround, in torch's order of operations. The power is correctly rounded here, while
 * torch's vectorized powf (Sleef, ≤ 1 ulp) sometimes rounds the other way: about 1% of entries differ
 * by 1 ulp from torch on CPU (a relative 6e-8, far below what the forward pass can see).
 *
 *   default: invFreq[i] = 1 / theta^(2i / d)
 *   linear:  invFreq / factor (transformers' _compute_linear_scaling_rope_parameters).
 *   llama3:  invFreq scaled by 1/factor below low frequencies, kept above high ones, and blended between
 *            (transformers' _compute_llama3_parameters).
 *   factors: invFreq[i] / factors[i] (llama.cpp's rope_freqs tensor, as ggml_rope_ext applies it).
 */
import type { LayerType, ModelConfig } from './config.ts';

const f = Math.fround;

export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const dim = config.headDim;
  const base = f(config.ropeTheta);
  const invFreq = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) invFreq[i] = f(1 / f(base ** f((2 * i) / dim)));
  const scaling = config.ropeScaling;
  if (scaling === null) return invFreq;
  if (scaling.type === 'linear') return invFreq.map((inv) => f(inv / f(scaling.factor)));
  if (scaling.type === 'factors') return invFreq.map((inv, i) => f(inv / f(scaling.factors[i])));

  const factor = f(scaling.factor);
  const low = f(scaling.lowFreqFactor);
  const oldContext = scaling.originalMaxPositionEmbeddings;
  const lowFreqWavelen = f(oldContext / scaling.lowFreqFactor);
  const highFreqWavelen = f(oldContext / scaling.highFreqFactor);
  const smoothDenominator = f(scaling.highFreqFactor - scaling.lowFreqFactor);
  const twoPi = f(2 * Math.PI);
  for (let i = 0; i < invFreq.length; i++) {
    const inv = invFreq[i];
    // torch evaluates `scalar / tensor` as reciprocal(tensor) * scalar.
    const wavelen = f(f(1 / inv) * twoPi);
    if (wavelen < highFreqWavelen) continue;
    const scaled = f(inv / factor);
    if (wavelen > lowFreqWavelen) {
      invFreq[i] = scaled;
      continue;
    }
    const smooth = f(f(f(f(1 / wavelen) * f(oldContext)) - low) / smoothDenominator);
    invFreq[i] = f(f(f(f(1 - smooth) * inv) / factor) + f(smooth * inv));
  }
  return invFreq;
}

/** The frequencies of one kind of layer: sliding-window layers may have their own RoPE (Gemma 3). */
export function layerInvFreq(
  config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling' | 'localRope'>,
  type: LayerType,
): Float32Array {
  const local = type === 'sliding' ? config.localRope : null;
  if (!local) return ropeInvFreq(config);
  return ropeInvFreq({ headDim: config.headDim, ropeTheta: local.theta, ropeScaling: local.scaling });
}
