/**
 * The decoder forward pass of the Llama family (Llama, Mistral, Qwen2: pre-norm, RoPE, grouped-query
 * attention, SiLU-gated MLP). One call runs one batch: any mix of prefill chunks and decode tokens, of
 * many adapters and the base. Base GEMMs run once over all tokens; each LoRA delta only over its tokens:
 *   y = x·Wᵀ + scale_s · (x·A_sᵀ)·B_sᵀ   for the tokens of segment s.
 */
import type {
  AttentionBatch,
  AttentionShape,
  Kernels,
  LoraBank,
  LoraMultiOutput,
  LoraOutput,
} from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import type { FusedWeights } from './fused-weights.ts';
import { type ModuleKind, moduleIndex } from './modules.ts';

/** How the batch's tokens map to adapter slots for the LoRA kernels. */
export type LoraLayout =
  | { mode: 'none' }
  | { mode: 'sgmv'; segStart: Int32Array; segSlot: Int32Array; numSegments: number } // prefill: contiguous segments
  | { mode: 'bgmv'; tokenSlot: Int32Array }; // decode: one slot per token

export interface ForwardBatch {
  numTokens: number;
  tokens: Int32Array; // [T]
  positions: Int32Array; // [T]
  slotMapping: Int32Array; // [T] KV cache row of each token
  attention: AttentionBatch;
  lora: LoraLayout;
  /** Rows of the batch whose logits are wanted (last token of each sequence, or every prompt token). */
  logitRows: Int32Array;
}

export interface KvCacheLayers {
  blockSize: number;
  k: Float32Array[]; // per layer [numBlocks·blockSize, Hkv·D]
  v: Float32Array[];
}

/** Activation buffers, grown to the largest batch seen and reused across steps. */
class Scratch {
  private buffers = new Map<string, Float32Array>();
  get(name: string, length: number): Float32Array {
    let b = this.buffers.get(name);
    if (!b || b.length < length) {
      b = new Float32Array(Math.max(length, Math.ceil((b?.length ?? 0) * 1.5)));
      this.buffers.set(name, b);
    }
    return b;
  }
}

export class DecoderModel {
  readonly attentionShape: AttentionShape;
  private readonly scratch = new Scratch();
  private readonly qSize: number;
  private readonly kvSize: number;
  private readonly qkvSize: number;

  constructor(
    readonly config: ModelConfig,
    readonly weights: FusedWeights,
    readonly kernels: Kernels,
    readonly invFreq: Float32Array,
    blockSize: number,
  ) {
    this.attentionShape = {
      numHeads: config.numHeads,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      blockSize,
      slidingWindow: config.slidingWindow ?? 0,
    };
    this.qSize = config.numHeads * config.headDim;
    this.kvSize = config.numKvHeads * config.headDim;
    this.qkvSize = this.qSize + 2 * this.kvSize;
  }

  /** Runs the batch; returns logits [logitRows.length, vocab] (a view into scratch: copy to keep). */
  forward(batch: ForwardBatch, kv: KvCacheLayers, bank: LoraBank | null): Float32Array {
    const { config, kernels: K, weights: W } = this;
    const T = batch.numTokens;
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
    const lora = bank && batch.lora.mode !== 'none' ? bank : null;

    K.embedding(batch.tokens, W.embedding, x, T);
    for (let l = 0; l < config.numLayers; l++) {
      const layer = W.layers[l];
      K.rmsNorm(x, layer.inputNorm, xn, T, H, config.rmsNormEps);
      K.gemm(xn, layer.qkv, qkv, T, layer.qkvBias);
      if (lora) {
        // q, k and v share xn: one call writes their column ranges of the fused qkv rows.
        this.applyLoraModules(lora, batch.lora, xn, H, {
          y: qkv,
          yStride: this.qkvSize,
          modules: [
            { module: moduleIndex(l, 'q_proj'), yOffset: 0, n: this.qSize },
            { module: moduleIndex(l, 'k_proj'), yOffset: this.qSize, n: this.kvSize },
            { module: moduleIndex(l, 'v_proj'), yOffset: this.qSize + this.kvSize, n: this.kvSize },
          ],
        });
      }
      K.ropeAndCacheWrite(
        qkv,
        T,
        this.attentionShape,
        batch.positions,
        this.invFreq,
        q,
        kv.k[l],
        kv.v[l],
        batch.slotMapping,
      );
      K.pagedAttention(q, kv.k[l], kv.v[l], attn, this.attentionShape, batch.attention);
      K.gemm(attn, layer.o, proj, T, layer.oBias);
      if (lora) this.applyLora(lora, batch.lora, l, 'o_proj', attn, this.qSize, { y: proj, yStride: H, yOffset: 0 }, H);
      K.addInPlace(x, proj, T * H);

      K.rmsNorm(x, layer.postAttentionNorm, xn, T, H, config.rmsNormEps);
      K.gemm(xn, layer.gateUp, gateUp, T);
      if (lora) {
        this.applyLoraModules(lora, batch.lora, xn, H, {
          y: gateUp,
          yStride: 2 * I,
          modules: [
            { module: moduleIndex(l, 'gate_proj'), yOffset: 0, n: I },
            { module: moduleIndex(l, 'up_proj'), yOffset: I, n: I },
          ],
        });
      }
      K.siluMul(gateUp, act, T, I);
      K.gemm(act, layer.down, proj, T);
      if (lora) this.applyLora(lora, batch.lora, l, 'down_proj', act, I, { y: proj, yStride: H, yOffset: 0 }, H);
      K.addInPlace(x, proj, T * H);
    }

    const R = batch.logitRows.length;
    const rows = this.scratch.get('rows', R * H);
    for (let r = 0; r < R; r++) {
      const t = batch.logitRows[r];
      rows.set(x.subarray(t * H, (t + 1) * H), r * H);
    }
    const normed = this.scratch.get('normedRows', R * H);
    K.rmsNorm(rows, W.finalNorm, normed, R, H, config.rmsNormEps);
    const logits = this.scratch.get('logits', R * config.vocabSize);
    K.gemm(normed, W.lmHead, logits, R);
    return logits.subarray(0, R * config.vocabSize);
  }

  private applyLora(
    bank: LoraBank,
    layout: LoraLayout,
    layer: number,
    kind: ModuleKind,
    x: Float32Array,
    k: number,
    out: LoraOutput,
    n: number,
  ) {
    const module = moduleIndex(layer, kind);
    if (layout.mode === 'sgmv') {
      this.kernels.loraSgmv(bank, module, x, k, out, n, layout.segStart, layout.segSlot, layout.numSegments);
    } else if (layout.mode === 'bgmv') {
      this.kernels.loraBgmv(bank, module, x, k, out, n, layout.tokenSlot, layout.tokenSlot.length);
    }
  }

  /** Several modules on the same input x in one kernel call (see Kernels.loraSgmvMulti). */
  private applyLoraModules(bank: LoraBank, layout: LoraLayout, x: Float32Array, k: number, out: LoraMultiOutput) {
    if (layout.mode === 'sgmv') {
      this.kernels.loraSgmvMulti(bank, x, k, out, layout.segStart, layout.segSlot, layout.numSegments);
    } else if (layout.mode === 'bgmv') {
      this.kernels.loraBgmvMulti(bank, x, k, out, layout.tokenSlot, layout.tokenSlot.length);
    }
  }
}
