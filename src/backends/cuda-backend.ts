/**
 * The CUDA backend: tensors, weights, the KV cache and adapter banks live in device memory behind handles of
 * the CUDA addon (native/cuda/binding/); the ops enqueue kernels on one stream. Host memory crosses only for
 * the step plan (setStep, one upload), weights and adapters as they load, sampled tokens and the logits rows
 * someone reads. Semantics are the Backend interface's; results agree with the host backends to f32
 * rounding (GPU reductions run in another order), and bf16/f16 weights run on tensor cores with x rounded
 * to the weight's dtype (see native/include/loraplex/cuda/gemm.h).
 */

import { plainPacked } from '../kernels/packed-plain.ts';
import type {
  AttentionShape,
  LoraBank,
  LoraDtype,
  PackedAdapter,
  PackedWeight,
  SamplingRow,
  WeightDType,
  WeightMatrix,
} from '../kernels/types.ts';
import { convertWeight, isBlockDType } from '../kernels/weight-format.ts';
import { type CudaAddon, type CudaDeviceInfo, cudaAvailability, loadCudaAddon } from './cuda-addon.ts';
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

type Handle = unknown;

class CudaTensor implements Tensor {
  constructor(
    readonly handle: Handle,
    readonly length: number,
  ) {}
}

class CudaWeight implements PackedWeight, EmbeddingTable {
  constructor(
    readonly handle: Handle,
    readonly dtype: WeightDType,
    readonly rows: number,
    readonly cols: number,
  ) {}
}

class CudaKvCache implements KvCache {
  readonly bytesPerToken: number;
  constructor(
    readonly handle: Handle,
    readonly shape: KvCacheShape,
  ) {
    this.bytesPerToken = 2 * shape.numLayers * shape.rowWidth * (shape.dtype === 'bf16' ? 2 : 4);
  }
}

class CudaBank implements LoraBank {
  constructor(
    readonly handle: Handle,
    readonly numSlots: number,
    readonly numModules: number,
    readonly dtype: LoraDtype,
  ) {}
}

class CudaStep implements StepState {
  numTokens = 0;
  numLogitRows = 0;
  hasAdapters = false;
  constructor(readonly handle: Handle) {}
}

const WEIGHT_DTYPE: Record<WeightDType, number> = { f32: 0, f16: 1, bf16: 2 };
/** The CUDA bank's storages (int8 slots are a CPU kernel: refused at createLoraBank). */
const LORA_DTYPE: Partial<Record<LoraDtype, number>> = { f32: 0, bf16: 1, f16: 2 };

function own<T>(value: unknown, cls: new (...args: never[]) => T, what: string): T {
  if (!(value instanceof cls)) throw new TypeError(`${what} of another backend was passed to the CUDA backend`);
  return value;
}
const tensor = (t: Tensor) => own(t, CudaTensor, 'a tensor').handle;
const step = (s: StepState) => own(s, CudaStep, 'a step');

/** [Hq, Hkv, D, blockSize, window, scale (0: 1/√D), softcap, rotaryDim (0: D)] for the addon. */
function shapeArray(s: AttentionShape): Float64Array {
  return Float64Array.of(
    s.numHeads,
    s.numKvHeads,
    s.headDim,
    s.blockSize,
    s.slidingWindow ?? 0,
    s.scale ?? 0,
    s.softcap ?? 0,
    s.rotaryDim ?? 0,
  );
}

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  private readonly addon: CudaAddon;
  /** Reused (module, yOffset, n) triples per AdapterOutputs object, so a step allocates nothing for them. */
  private readonly moduleTriples = new WeakMap<AdapterOutputs['modules'], Int32Array>();

  constructor() {
    this.addon = loadCudaAddon();
  }

  get device(): CudaDeviceInfo {
    const a = cudaAvailability();
    if (!a.ok) throw new Error(a.reason);
    return a.device;
  }

  /** Which GEMM runs: cuBLAS when loaded (auto), or the built-in kernels (the checks compare both). */
  setGemmEngine(engine: 'auto' | 'cublas' | 'builtin'): void {
    this.addon.setGemmEngine(engine);
  }

  /** Waits for every enqueued op (benchmarks time whole steps with it). */
  synchronize(): void {
    this.addon.synchronize();
  }

  allocate(length: number): Tensor {
    return new CudaTensor(this.addon.alloc(length), length);
  }

  free(t: Tensor): void {
    this.addon.free(tensor(t));
  }

  upload(data: Float32Array): Tensor {
    const t = this.allocate(data.length);
    this.addon.upload(tensor(t), data);
    return t;
  }

  read(t: Tensor, offset: number, length: number): Float32Array {
    const handle = tensor(t);
    if (offset < 0 || length < 0 || offset + length > t.length) throw new RangeError('read past the end of the tensor');
    return this.addon.read(handle, offset, length);
  }

  packWeight(w: WeightMatrix): PackedWeight {
    // No quantized GEMM on the GPU yet: q8_0 / q4_k / q6_k blocks (and stacked parts) run dequantized to bf16.
    const f = isBlockDType(w.dtype) ? convertWeight(w, 'bf16') : w;
    const dtype = f.dtype as WeightDType;
    return new CudaWeight(this.addon.weight(WEIGHT_DTYPE[dtype], f.rows, f.cols, f.data), dtype, f.rows, f.cols);
  }

  embeddingTable(w: WeightMatrix): EmbeddingTable {
    return this.packWeight(w) as CudaWeight;
  }

  createKvCache(shape: KvCacheShape): KvCache {
    const handle = this.addon.kvCreate(
      shape.numLayers,
      shape.numBlocks,
      shape.blockSize,
      shape.rowWidth,
      shape.dtype === 'bf16' ? 1 : 0,
    );
    return new CudaKvCache(handle, { ...shape });
  }

  createLoraBank(numSlots: number, numModules: number, dtype: LoraDtype): LoraBank {
    const code = LORA_DTYPE[dtype];
    if (code === undefined) {
      throw new RangeError(`the CUDA backend stores adapter slots as f32, bf16 or f16, not ${dtype} (--lora-dtype)`);
    }
    return new CudaBank(this.addon.bankCreate(numSlots, numModules, code), numSlots, numModules, dtype);
  }

  setLoraSlot(bank: LoraBank, slot: number, adapter: PackedAdapter): void {
    const b = own(bank, CudaBank, 'a LoRA bank');
    // The CUDA bank has no rank / column scales: VeRA's vectors are folded into per-module factors here.
    const a = plainPacked(adapter);
    this.addon.bankSet(
      b.handle,
      slot,
      a.weights,
      a.rank,
      a.offsetA,
      a.offsetB,
      a.scale,
      a.inFeatures,
      a.outFeatures,
      a.outScale ?? null,
      a.offsetOutScale ?? null,
    );
  }

  clearLoraSlot(bank: LoraBank, slot: number): void {
    this.addon.bankClear(own(bank, CudaBank, 'a LoRA bank').handle, slot);
  }

  createStep(): StepState {
    return new CudaStep(this.addon.stepCreate());
  }

  setStep(s: StepState, inputs: StepInputs): void {
    const st = step(s);
    const a = inputs.attention;
    st.hasAdapters = this.addon.stepSet(
      st.handle,
      inputs.numTokens,
      inputs.tokens,
      inputs.positions,
      inputs.slotMapping,
      a.qStart,
      a.kvLen,
      a.blockTables,
      a.blockTableStart,
      a.numSeqs,
      inputs.rowSlot,
      inputs.logitRows,
    );
    st.numTokens = inputs.numTokens;
    st.numLogitRows = inputs.logitRows.length;
  }

  embedding(s: StepState, table: EmbeddingTable, out: Tensor): void {
    this.addon.embedding(step(s).handle, own(table, CudaWeight, 'an embedding table').handle, tensor(out));
  }

  rmsNorm(x: Tensor, weight: Tensor, out: Tensor, rows: number, dim: number, eps: number): void {
    this.addon.rmsNorm(tensor(x), tensor(weight), tensor(out), rows, dim, eps);
  }

  gemm(x: Tensor, w: PackedWeight, y: Tensor, m: number, bias?: Tensor): void {
    this.addon.gemm(tensor(x), own(w, CudaWeight, 'a weight').handle, tensor(y), m, bias ? tensor(bias) : null);
  }

  applyAdapters(bank: LoraBank, s: StepState, x: Tensor, k: number, out: AdapterOutputs): void {
    const st = step(s);
    if (!st.hasAdapters) return;
    let triples = this.moduleTriples.get(out.modules);
    if (!triples) {
      triples = Int32Array.from(out.modules.flatMap((m) => [m.module, m.yOffset, m.n]));
      this.moduleTriples.set(out.modules, triples);
    }
    const b = own(bank, CudaBank, 'a LoRA bank');
    this.addon.applyAdapters(b.handle, st.handle, tensor(x), k, tensor(out.y), out.yStride, triples);
  }

  ropeAndCacheWrite(
    s: StepState,
    qkv: Tensor,
    shape: AttentionShape,
    invFreq: Tensor,
    qOut: Tensor,
    kv: KvCache,
    layer: number,
  ): void {
    const cache = own(kv, CudaKvCache, 'a KV cache');
    this.addon.ropeAndCacheWrite(
      step(s).handle,
      tensor(qkv),
      shapeArray(shape),
      tensor(invFreq),
      tensor(qOut),
      cache.handle,
      layer,
    );
  }

  pagedAttention(s: StepState, q: Tensor, kv: KvCache, layer: number, out: Tensor, shape: AttentionShape): void {
    const cache = own(kv, CudaKvCache, 'a KV cache');
    this.addon.pagedAttention(step(s).handle, tensor(q), cache.handle, layer, tensor(out), shapeArray(shape));
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
    this.addon.rmsNormHeads(tensor(x), rows, rowStride, offset, numHeads, headDim, tensor(weight), eps);
  }

  siluMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void {
    this.addon.siluMul(tensor(gateUp), tensor(out), rows, inter);
  }

  geluTanhMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void {
    this.addon.geluTanhMul(tensor(gateUp), tensor(out), rows, inter);
  }

  addInPlace(x: Tensor, y: Tensor, length: number): void {
    this.addon.addInPlace(tensor(x), tensor(y), length);
  }

  softcapInPlace(x: Tensor, length: number, cap: number): void {
    this.addon.softcapInPlace(tensor(x), length, cap);
  }

  scaleInPlace(x: Tensor, length: number, factor: number): void {
    this.addon.scaleInPlace(tensor(x), length, factor);
  }

  gatherLogitRows(s: StepState, x: Tensor, dim: number, out: Tensor): void {
    this.addon.gatherLogitRows(step(s).handle, tensor(x), dim, tensor(out));
  }

  sample(logits: Tensor, vocab: number, rowIndex: Int32Array, rows: SamplingRow[]): Int32Array {
    if (rowIndex.length !== rows.length) throw new RangeError('sample: one row index per sampling row');
    const params = new Float64Array(4 * rows.length);
    for (const [i, r] of rows.entries()) params.set([r.temperature, r.topK, r.topP, r.uniform], 4 * i);
    return this.addon.sample(tensor(logits), vocab, rowIndex, params);
  }
}
