/**
 * The decoder forward pass, generic over a model spec (src/model/spec/): pre-norm decoder layers with RoPE,
 * grouped-query paged attention and a gated MLP, plus what each family adds (q/k norms, norms after each
 * block, GeGLU, soft-capping, scaled embeddings, per-layer windows and RoPE). One call runs one step: any mix
 * of prefill chunks and decode tokens, of many adapters and the base. Base GEMMs run once over all tokens;
 * each adapter delta only over its rows:  y = x·Wᵀ + scale_s · (x·A_sᵀ)·B_sᵀ  for the rows of slot s
 * (a DoRA slot's rows then times its out-scale), and a projection's bias after them (BiasAfterAdapters).
 */
import type { AdapterOutputs, Backend, KvCache, StepState, Tensor } from '../backends/types.ts';
import type { AttentionShape, LoraBank, PackedWeight } from '../kernels/types.ts';
import type { ModelConfig } from './config.ts';
import type { ForwardHooks } from './forward-hooks.ts';
import type { FusedWeights } from './fused-weights.ts';
import { type ModuleKind, moduleIndex, moduleKinds, moduleShape } from './modules.ts';
import { layerInvFreq } from './rope.ts';
import { type ModelSpec, specOf } from './spec/index.ts';

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

/**
 * Adds a projection's bias to y [T, N] after the adapters: a DoRA slot rescales its rows' x·Wᵀ + delta, never
 * the bias (PEFT: y = s·(x·Wᵀ + delta) + bias). Every row takes this order, so a row's bits never depend on
 * what else is in the batch. The broadcast uses the backend's own ops: a GEMM of one zero input column
 * writes 0·0 + bias[n] = bias[n] exactly into every row, then one add.
 */
class BiasAfterAdapters {
  private readonly zeroWeights = new Map<number, PackedWeight>();
  private zeros: Tensor | null = null;
  private zerosLength = 0;
  constructor(
    private readonly backend: Backend,
    private readonly scratch: Scratch,
  ) {}

  add(y: Tensor, bias: Tensor, rows: number, n: number): void {
    const B = this.backend;
    const broadcast = this.scratch.get('biasRows', rows * n);
    B.gemm(this.zeroColumn(rows), this.zeroWeight(n), broadcast, rows, bias);
    B.addInPlace(y, broadcast, rows * n);
  }

  private zeroColumn(rows: number): Tensor {
    if (!this.zeros || this.zerosLength < rows) {
      if (this.zeros) this.backend.free(this.zeros);
      this.zerosLength = Math.max(rows, Math.ceil(this.zerosLength * 1.5));
      this.zeros = this.backend.upload(new Float32Array(this.zerosLength)); // [rows, 1], stays zero
    }
    return this.zeros;
  }

  private zeroWeight(n: number): PackedWeight {
    let w = this.zeroWeights.get(n);
    if (!w) {
      w = this.backend.packWeight({ dtype: 'f32', rows: n, cols: 1, data: new Float32Array(n) });
      this.zeroWeights.set(n, w);
    }
    return w;
  }
}

type AdapterModules = AdapterOutputs['modules'];

/** What one layer's attention and adapter groups look like (built once). */
interface LayerPlan {
  attention: AttentionShape;
  invFreq: Tensor;
  qkv: AdapterModules;
  o: AdapterModules;
  gateUp: AdapterModules;
  down: AdapterModules;
}

export class DecoderModel {
  readonly spec: ModelSpec;
  private readonly scratch: Scratch;
  private readonly biasAfter: BiasAfterAdapters;
  private readonly layers: LayerPlan[];
  private readonly qSize: number;
  private readonly kvSize: number;
  private readonly qkvSize: number;

  constructor(
    readonly config: ModelConfig,
    readonly weights: FusedWeights,
    readonly backend: Backend,
    blockSize: number,
  ) {
    this.spec = specOf(config.family);
    this.scratch = new Scratch(backend);
    this.biasAfter = new BiasAfterAdapters(backend, this.scratch);
    this.qSize = config.numHeads * config.headDim;
    this.kvSize = config.numKvHeads * config.headDim;
    this.qkvSize = this.qSize + 2 * this.kvSize;
    const kinds = moduleKinds(config);
    // The column ranges of a fused group's members, in order.
    const group = (l: number, members: readonly ModuleKind[]): AdapterModules => {
      let yOffset = 0;
      return members.map((kind) => {
        const n = moduleShape(config, kind).outFeatures;
        const out = { module: moduleIndex(l, kind, kinds), yOffset, n };
        yOffset += n;
        return out;
      });
    };
    const invFreq = {
      full: backend.upload(layerInvFreq(config, 'full')),
      sliding: backend.upload(layerInvFreq(config, 'sliding')),
    };
    this.layers = config.layerTypes.map((type, l) => ({
      attention: {
        numHeads: config.numHeads,
        numKvHeads: config.numKvHeads,
        headDim: config.headDim,
        blockSize,
        slidingWindow: type === 'sliding' ? (config.slidingWindow ?? 0) : 0,
        scale: config.attentionScale,
        softcap: config.attnLogitSoftcap ?? 0,
      },
      invFreq: invFreq[type],
      qkv: group(l, this.spec.qkv),
      o: group(l, ['o_proj']),
      gateUp: group(l, this.spec.gateUp),
      down: group(l, ['down_proj']),
    }));
  }

  /**
   * Runs the step the backend was given (`backend.setStep(step, …)`); returns the logits tensor, rows
   * [0, step.numLogitRows) of [*, vocab] (scratch: read before the next step). `hooks`: the step's adapters
   * with their own embedding, norms or lm_head (forward-hooks.ts), null when no row has one.
   */
  forward(step: StepState, kv: KvCache, bank: LoraBank | null, hooks: ForwardHooks | null = null): Tensor {
    const { config, spec, backend: B, weights: W } = this;
    const T = step.numTokens;
    const H = config.hiddenSize;
    const I = config.intermediateSize;
    const D = config.headDim;
    const eps = config.rmsNormEps;
    const x = this.scratch.get('x', T * H);
    const xn = this.scratch.get('xn', T * H);
    const qkv = this.scratch.get('qkv', T * this.qkvSize);
    const q = this.scratch.get('q', T * this.qSize);
    const attn = this.scratch.get('attn', T * this.qSize);
    const proj = this.scratch.get('proj', T * H);
    const projNormed = spec.norms.attnOut || spec.norms.mlpOut ? this.scratch.get('projNormed', T * H) : proj;
    const gateUp = this.scratch.get('gateUp', T * 2 * I);
    const act = this.scratch.get('act', T * I);
    const lora = bank && step.hasAdapters ? bank : null;
    const activate = config.hiddenActivation === 'gelu_tanh' ? B.geluTanhMul.bind(B) : B.siluMul.bind(B);

    B.embedding(step, W.embedding, x);
    hooks?.embedding(x);
    if (spec.scaleEmbeddings) B.scaleInPlace(x, T * H, Math.sqrt(H));
    for (let l = 0; l < config.numLayers; l++) {
      const layer = W.layers[l];
      const plan = this.layers[l];
      B.rmsNorm(x, layer.norms.attnIn, xn, T, H, eps);
      hooks?.layerNorm(l, 'attnIn', x, xn);
      B.gemm(xn, layer.qkv, qkv, T);
      // q, k and v share xn: one call writes their column ranges of the fused qkv rows.
      if (lora) B.applyAdapters(lora, step, xn, H, { y: qkv, yStride: this.qkvSize, modules: plan.qkv });
      if (layer.qkvBias) this.biasAfter.add(qkv, layer.qkvBias, T, this.qkvSize);
      if (layer.norms.q && layer.norms.k) {
        B.rmsNormHeads(qkv, T, this.qkvSize, 0, config.numHeads, D, layer.norms.q, eps);
        B.rmsNormHeads(qkv, T, this.qkvSize, this.qSize, config.numKvHeads, D, layer.norms.k, eps);
      }
      B.ropeAndCacheWrite(step, qkv, plan.attention, plan.invFreq, q, kv, l);
      B.pagedAttention(step, q, kv, l, attn, plan.attention);
      B.gemm(attn, layer.o, proj, T);
      if (lora) B.applyAdapters(lora, step, attn, this.qSize, { y: proj, yStride: H, modules: plan.o });
      if (layer.oBias) this.biasAfter.add(proj, layer.oBias, T, H);
      if (layer.norms.attnOut) B.rmsNorm(proj, layer.norms.attnOut, projNormed, T, H, eps);
      B.addInPlace(x, layer.norms.attnOut ? projNormed : proj, T * H);

      B.rmsNorm(x, layer.norms.mlpIn, xn, T, H, eps);
      hooks?.layerNorm(l, 'mlpIn', x, xn);
      B.gemm(xn, layer.gateUp, gateUp, T);
      if (lora) B.applyAdapters(lora, step, xn, H, { y: gateUp, yStride: 2 * I, modules: plan.gateUp });
      activate(gateUp, act, T, I);
      B.gemm(act, layer.down, proj, T);
      if (lora) B.applyAdapters(lora, step, act, I, { y: proj, yStride: H, modules: plan.down });
      if (layer.norms.mlpOut) B.rmsNorm(proj, layer.norms.mlpOut, projNormed, T, H, eps);
      B.addInPlace(x, layer.norms.mlpOut ? projNormed : proj, T * H);
    }

    const R = step.numLogitRows;
    const rows = this.scratch.get('rows', R * H);
    B.gatherLogitRows(step, x, H, rows);
    const normed = this.scratch.get('normedRows', R * H);
    B.rmsNorm(rows, W.finalNorm, normed, R, H, eps);
    hooks?.finalNorm(rows, normed);
    const logits = this.scratch.get('logits', R * config.vocabSize);
    B.gemm(normed, W.lmHead, logits, R);
    hooks?.lmHead(normed, logits);
    if (config.finalLogitSoftcap !== null) B.softcapInPlace(logits, R * config.vocabSize, config.finalLogitSoftcap);
    return logits;
  }
}
