/**
 * A backend on host memory: tensors are Float32Arrays the backend allocates, the ops are a `Kernels`
 * implementation (the plain TypeScript reference, or the native CPU addon). Everything the model holds is a
 * handle to this memory; only this file unwraps them.
 */
import type {
  AttentionShape,
  Kernels,
  LoraBank,
  LoraDtype,
  LoraRows,
  PackedAdapter,
  PackedWeight,
  SamplingRow,
  WeightMatrix,
} from '../kernels/types.ts';
import type {
  AdapterOutputs,
  Backend,
  EmbeddingTable,
  KvCache,
  KvCacheShape,
  StepInputs,
  StepState,
  Tensor,
} from './types.ts';

class HostTensor implements Tensor {
  constructor(readonly data: Float32Array) {}
  get length(): number {
    return this.data.length;
  }
}

class HostTable implements EmbeddingTable {
  constructor(readonly matrix: WeightMatrix) {}
  get rows(): number {
    return this.matrix.rows;
  }
  get cols(): number {
    return this.matrix.cols;
  }
}

class HostKvCache implements KvCache {
  readonly k: (Float32Array | Uint16Array)[] = [];
  readonly v: (Float32Array | Uint16Array)[] = [];
  readonly bytesPerToken: number;
  constructor(readonly shape: KvCacheShape) {
    const elements = shape.numBlocks * shape.blockSize * shape.rowWidth;
    for (let l = 0; l < shape.numLayers; l++) {
      this.k.push(shape.dtype === 'bf16' ? new Uint16Array(elements) : new Float32Array(elements));
      this.v.push(shape.dtype === 'bf16' ? new Uint16Array(elements) : new Float32Array(elements));
    }
    this.bytesPerToken = 2 * shape.numLayers * shape.rowWidth * (shape.dtype === 'bf16' ? 2 : 4);
  }
}

/** The step's inputs, and its rows grouped by adapter slot once for every adapter application of the step. */
class HostStep implements StepState {
  inputs: StepInputs | null = null;
  hasAdapters = false;
  constructor(readonly rows: LoraRows) {}
  get numTokens(): number {
    return this.inputs?.numTokens ?? 0;
  }
  get numLogitRows(): number {
    return this.inputs?.logitRows.length ?? 0;
  }
  get plan(): StepInputs {
    if (!this.inputs) throw new Error('the step has no plan: call setStep() first');
    return this.inputs;
  }
}

function data(t: Tensor): Float32Array {
  if (!(t instanceof HostTensor)) throw new TypeError('a tensor of another backend was passed to a host backend');
  return t.data;
}

function hostStep(s: StepState): HostStep {
  if (!(s instanceof HostStep)) throw new TypeError('a step of another backend was passed to a host backend');
  return s;
}

function hostKv(kv: KvCache): HostKvCache {
  if (!(kv instanceof HostKvCache)) throw new TypeError('a KV cache of another backend was passed to a host backend');
  return kv;
}

export class HostBackend implements Backend {
  readonly name: string;

  constructor(readonly kernels: Kernels) {
    this.name = kernels.name;
  }

  allocate(length: number): Tensor {
    return new HostTensor(new Float32Array(length));
  }

  free(t: Tensor): void {
    data(t); // host memory is the garbage collector's; checks the handle is ours
  }

  upload(values: Float32Array): Tensor {
    return new HostTensor(Float32Array.from(values));
  }

  read(t: Tensor, offset: number, length: number): Float32Array {
    const d = data(t);
    if (offset < 0 || length < 0 || offset + length > d.length) throw new RangeError('read past the end of the tensor');
    return d.slice(offset, offset + length);
  }

  packWeight(w: WeightMatrix): PackedWeight {
    return this.kernels.packWeight(w);
  }

  embeddingTable(w: WeightMatrix): EmbeddingTable {
    return new HostTable(w);
  }

  createKvCache(shape: KvCacheShape): KvCache {
    return new HostKvCache(shape);
  }

  createLoraBank(numSlots: number, numModules: number, dtype: LoraDtype): LoraBank {
    return this.kernels.createLoraBank(numSlots, numModules, dtype);
  }

  setLoraSlot(bank: LoraBank, slot: number, adapter: PackedAdapter): void {
    this.kernels.setLoraSlot(bank, slot, adapter);
  }

  clearLoraSlot(bank: LoraBank, slot: number): void {
    this.kernels.clearLoraSlot(bank, slot);
  }

  createStep(): StepState {
    return new HostStep(this.kernels.createLoraRows());
  }

  setStep(step: StepState, inputs: StepInputs): void {
    const s = hostStep(step);
    s.inputs = inputs;
    s.hasAdapters = inputs.rowSlot.some((slot) => slot >= 0);
    if (s.hasAdapters) this.kernels.setLoraRows(s.rows, inputs.rowSlot, inputs.numTokens);
  }

  embedding(step: StepState, table: EmbeddingTable, out: Tensor): void {
    const plan = hostStep(step).plan;
    if (!(table instanceof HostTable)) throw new TypeError('an embedding table of another backend');
    this.kernels.embedding(plan.tokens, table.matrix, data(out), plan.numTokens);
  }

  rmsNorm(x: Tensor, weight: Tensor, out: Tensor, rows: number, dim: number, eps: number): void {
    this.kernels.rmsNorm(data(x), data(weight), data(out), rows, dim, eps);
  }

  gemm(x: Tensor, w: PackedWeight, y: Tensor, m: number, bias?: Tensor): void {
    this.kernels.gemm(data(x), w, data(y), m, bias ? data(bias) : undefined);
  }

  applyAdapters(bank: LoraBank, step: StepState, x: Tensor, k: number, out: AdapterOutputs): void {
    const s = hostStep(step);
    if (!s.hasAdapters) return;
    this.kernels.applyAdapters(bank, s.rows, data(x), k, {
      y: data(out.y),
      yStride: out.yStride,
      modules: out.modules,
    });
  }

  ropeAndCacheWrite(
    step: StepState,
    qkv: Tensor,
    shape: AttentionShape,
    invFreq: Tensor,
    qOut: Tensor,
    kv: KvCache,
    layer: number,
  ): void {
    const plan = hostStep(step).plan;
    const cache = hostKv(kv);
    this.kernels.ropeAndCacheWrite(
      data(qkv),
      plan.numTokens,
      shape,
      plan.positions,
      data(invFreq),
      data(qOut),
      cache.k[layer],
      cache.v[layer],
      plan.slotMapping,
    );
  }

  pagedAttention(step: StepState, q: Tensor, kv: KvCache, layer: number, out: Tensor, shape: AttentionShape): void {
    const plan = hostStep(step).plan;
    const cache = hostKv(kv);
    this.kernels.pagedAttention(data(q), cache.k[layer], cache.v[layer], data(out), shape, plan.attention);
  }

  rmsNormHeads(
    x: Tensor,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    weight: Tensor,
    eps: number,
  ): void {
    this.kernels.rmsNormHeads(data(x), rows, rowStride, offset, numHeads, headDim, data(weight), eps);
  }

  siluMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void {
    this.kernels.siluMul(data(gateUp), data(out), rows, inter);
  }

  geluTanhMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void {
    this.kernels.geluTanhMul(data(gateUp), data(out), rows, inter);
  }

  addInPlace(x: Tensor, y: Tensor, length: number): void {
    this.kernels.addInPlace(data(x), data(y), length);
  }

  softcapInPlace(x: Tensor, length: number, cap: number): void {
    this.kernels.softcapInPlace(data(x), length, cap);
  }

  scaleInPlace(x: Tensor, length: number, factor: number): void {
    this.kernels.scaleInPlace(data(x), length, factor);
  }

  gatherLogitRows(step: StepState, x: Tensor, dim: number, out: Tensor): void {
    const { logitRows } = hostStep(step).plan;
    const src = data(x);
    const dst = data(out);
    for (let r = 0; r < logitRows.length; r++) {
      const t = logitRows[r];
      dst.set(src.subarray(t * dim, (t + 1) * dim), r * dim);
    }
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    const d = data(t);
    if (offset < 0 || length < 0 || offset + length > d.length)
      throw new RangeError('a view past the end of the tensor');
    return new HostTensor(d.subarray(offset, offset + length));
  }

  copy(src: Tensor, dst: Tensor, length: number): void {
    data(dst).set(data(src).subarray(0, length));
  }

  sample(logits: Tensor, vocab: number, rowIndex: Int32Array, rows: SamplingRow[]): Int32Array {
    const all = data(logits);
    const tokens = new Int32Array(rows.length);
    if (rows.length === 0) return tokens;
    // The sampled rows are often the first rows in order (no prompt logits asked): sample in place.
    const inPlace = rowIndex.every((r, i) => r === i);
    let input: Float32Array;
    if (inPlace) input = all.subarray(0, rows.length * vocab);
    else {
      input = new Float32Array(rows.length * vocab);
      for (let i = 0; i < rowIndex.length; i++)
        input.set(all.subarray(rowIndex[i] * vocab, (rowIndex[i] + 1) * vocab), i * vocab);
    }
    this.kernels.sample(input, vocab, rows, tokens);
    return tokens;
  }
}
