/**
 * The decoder forward pass of the Llama family (Llama, Mistral, Qwen2: pre-norm, RoPE, grouped-query
 * attention, SiLU-gated MLP), on a backend. One call runs one step: any mix of prefill chunks and decode
 * tokens, of many adapters and the base. Base GEMMs run once over all tokens; each adapter delta only over
 * its rows:  y = x·Wᵀ + scale_s · (x·A_sᵀ)·B_sᵀ  for the rows of slot s.
 */
import type { AdapterOutputs, Backend, KvCache, StepState, Tensor } from '../backends/types.ts';
import type { AttentionShape, LoraBank } from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import type { FusedWeights } from './fused-weights.ts';
import { moduleIndex } from './modules.ts';

/** Activation tensors, grown to the largest step seen and reused across steps. */
class Scratch {
  private readonly tensors = new Map<string, Tensor>();
  constructor(private readonly backend: Backend) {}
  get(name: string, length: number): Tensor {
    const t = this.tensors.get(name);
    if (t && t.length >= length) return t;
    if (t) this.backend.free(t);
    const grown = this.backend.allocate(Math.max(length, Math.ceil((t?.length ?? 0) * 1.5)));
    this.tensors.set(name, grown);
    return grown;
  }
}

export class DecoderModel {
  readonly attentionShape: AttentionShape;
  private readonly scratch: Scratch;
  private readonly invFreq: Tensor;
  private readonly qSize: number;
  private readonly kvSize: number;
  private readonly qkvSize: number;
  /** Per layer: the adapter outputs of its q|k|v and gate|up groups (built once; the tensors are bound per step). */
  private readonly groups: { qkv: AdapterOutputs['modules']; gateUp: AdapterOutputs['modules'] }[];

  constructor(
    readonly config: ModelConfig,
    readonly weights: FusedWeights,
    readonly backend: Backend,
    invFreq: Float32Array,
    blockSize: number,
  ) {
    this.attentionShape = {
      numHeads: config.numHeads,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      blockSize,
      slidingWindow: config.slidingWindow ?? 0,
    };
    this.scratch = new Scratch(backend);
    this.invFreq = backend.upload(invFreq);
    this.qSize = config.numHeads * config.headDim;
    this.kvSize = config.numKvHeads * config.headDim;
    this.qkvSize = this.qSize + 2 * this.kvSize;
    const I = config.intermediateSize;
    this.groups = Array.from({ length: config.numLayers }, (_, l) => ({
      qkv: [
        { module: moduleIndex(l, 'q_proj'), yOffset: 0, n: this.qSize },
        { module: moduleIndex(l, 'k_proj'), yOffset: this.qSize, n: this.kvSize },
        { module: moduleIndex(l, 'v_proj'), yOffset: this.qSize + this.kvSize, n: this.kvSize },
      ],
      gateUp: [
        { module: moduleIndex(l, 'gate_proj'), yOffset: 0, n: I },
        { module: moduleIndex(l, 'up_proj'), yOffset: I, n: I },
      ],
    }));
  }

  /**
   * Runs the step the backend was given (`backend.setStep(step, …)`); returns the logits tensor, rows
   * [0, step.numLogitRows) of [*, vocab] (scratch: read before the next step).
   */
  forward(step: StepState, kv: KvCache, bank: LoraBank | null): Tensor {
    const { config, backend: B, weights: W } = this;
    const T = step.numTokens;
    const H = config.hiddenSize;
    const I = config.intermediateSize;
    const x = this.scratch.get('x', T * H);
    const xn = this.scratch.get('xn', T * H);
    const qkv = this.scratch.get('qkv', T * this.qkvSize);
    const q = this.scratch.get('q', T * this.qSize);
    const attn = this.scratch.get('attn', T * this.qSize);
    const proj = this.scratch.get('proj', T * H);
    const gateUp = this.scratch.get('gateUp', T * 2 * I);
    const act = this.scratch.get('act', T * I);
    const lora = bank && step.hasAdapters ? bank : null;

    B.embedding(step, W.embedding, x);
    for (let l = 0; l < config.numLayers; l++) {
      const layer = W.layers[l];
      const groups = this.groups[l];
      B.rmsNorm(x, layer.inputNorm, xn, T, H, config.rmsNormEps);
      B.gemm(xn, layer.qkv, qkv, T, layer.qkvBias);
      // q, k and v share xn: one call writes their column ranges of the fused qkv rows.
      if (lora) B.applyAdapters(lora, step, xn, H, { y: qkv, yStride: this.qkvSize, modules: groups.qkv });
      B.ropeAndCacheWrite(step, qkv, this.attentionShape, this.invFreq, q, kv, l);
      B.pagedAttention(step, q, kv, l, attn, this.attentionShape);
      B.gemm(attn, layer.o, proj, T, layer.oBias);
      if (lora) {
        const modules = [{ module: moduleIndex(l, 'o_proj'), yOffset: 0, n: H }];
        B.applyAdapters(lora, step, attn, this.qSize, { y: proj, yStride: H, modules });
      }
      B.addInPlace(x, proj, T * H);

      B.rmsNorm(x, layer.postAttentionNorm, xn, T, H, config.rmsNormEps);
      B.gemm(xn, layer.gateUp, gateUp, T);
      if (lora) B.applyAdapters(lora, step, xn, H, { y: gateUp, yStride: 2 * I, modules: groups.gateUp });
      B.siluMul(gateUp, act, T, I);
      B.gemm(act, layer.down, proj, T);
      if (lora) {
        const modules = [{ module: moduleIndex(l, 'down_proj'), yOffset: 0, n: H }];
        B.applyAdapters(lora, step, act, I, { y: proj, yStride: H, modules });
      }
      B.addInPlace(x, proj, T * H);
    }

    const R = step.numLogitRows;
    const rows = this.scratch.get('rows', R * H);
    B.gatherLogitRows(step, x, H, rows);
    const normed = this.scratch.get('normedRows', R * H);
    B.rmsNorm(rows, W.finalNorm, normed, R, H, config.rmsNormEps);
    const logits = this.scratch.get('logits', R * config.vocabSize);
    B.gemm(normed, W.lmHead, logits, R);
    return logits;
  }
}
