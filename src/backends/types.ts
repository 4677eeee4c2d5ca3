/**
 * A backend owns device memory and runs the model's ops on it. The engine and the model hold handles only
 * (`Tensor`, `PackedWeight`, `KvCache`, `LoraBank`, `StepState`); host arrays cross the boundary only for
 * inputs (token ids and the step plan, vectors written once at load) and outputs (sampled tokens, the logits
 * rows someone asked for). The host backends (`host-backend.ts`) run the reference or native CPU kernels on
 * host memory; a CUDA backend will hold device pointers behind the same handles.
 *
 * Conventions: activations are f32, row-major, shapes [rows, cols]; an op's `rows`/`dim` arguments say how
 * much of a (possibly larger, reused) tensor it touches.
 */
import type {
  AttentionBatch,
  AttentionShape,
  LoraBank,
  LoraDtype,
  PackedAdapter,
  PackedWeight,
  SamplingRow,
  WeightMatrix,
} from '../kernels/types.ts';

/** An f32 buffer the backend owns. Opaque beyond its length (in elements). */
export interface Tensor {
  readonly length: number;
}

/** How the KV cache stores keys and values; attention always accumulates in f32. */
export type KvDtype = 'f32' | 'bf16';

export interface KvCacheShape {
  numLayers: number;
  numBlocks: number;
  blockSize: number; // tokens per block
  rowWidth: number; // Hkv · D: one token's keys (or values) in one layer
  dtype: KvDtype;
}

/** The paged KV cache: per layer, keys and values of numBlocks · blockSize token rows. */
export interface KvCache {
  readonly shape: KvCacheShape;
  /** Bytes of one token's keys and values over all layers. */
  readonly bytesPerToken: number;
}

/** An embedding table [vocab, dim], kept in its storage format. */
export interface EmbeddingTable {
  readonly rows: number;
  readonly cols: number;
}

/**
 * One step's plan as the host builds it (src/engine/plan/): which token each row computes, where, for which
 * sequence, with which adapter slot, and which rows produce logits. Every layer reuses it.
 */
export interface StepInputs {
  numTokens: number;
  tokens: Int32Array; // [T]
  positions: Int32Array; // [T]
  slotMapping: Int32Array; // [T] KV cache row (block · blockSize + offset) of each token
  attention: AttentionBatch;
  /** [T] adapter slot of each row, -1 for the base. */
  rowSlot: Int32Array;
  /** Rows whose logits are wanted, in output order. */
  logitRows: Int32Array;
}

/** The plan once handed to the backend (uploaded, adapter rows grouped): reused object, one per model. */
export interface StepState {
  readonly numTokens: number;
  readonly numLogitRows: number;
  /** Some row uses an adapter slot this step. */
  readonly hasAdapters: boolean;
}

/** Where an adapter application writes: one column range of the rows of `y` per module. */
export interface AdapterOutputs {
  y: Tensor;
  yStride: number;
  modules: readonly { module: number; yOffset: number; n: number }[];
}

export interface Backend {
  readonly name: string;

  // ── memory ──────────────────────────────────────────────────────────────────────────────────
  /** A new f32 tensor of `length` elements (contents unspecified). */
  allocate(length: number): Tensor;
  free(t: Tensor): void;
  /** Host → backend, for inputs and vectors set once (norm weights, biases, RoPE frequencies). */
  upload(data: Float32Array): Tensor;
  /** Backend → host: elements [offset, offset + length) of t (outputs only: logits rows someone asked for). */
  read(t: Tensor, offset: number, length: number): Float32Array;

  // ── weights and caches ──────────────────────────────────────────────────────────────────────
  packWeight(w: WeightMatrix): PackedWeight;
  embeddingTable(w: WeightMatrix): EmbeddingTable;
  createKvCache(shape: KvCacheShape): KvCache;
  createLoraBank(numSlots: number, numModules: number, dtype: LoraDtype): LoraBank;
  setLoraSlot(bank: LoraBank, slot: number, adapter: PackedAdapter): void;
  clearLoraSlot(bank: LoraBank, slot: number): void;

  // ── the step ────────────────────────────────────────────────────────────────────────────────
  createStep(): StepState;
  /** Hands this step's plan to the backend, once per step, before the forward pass. */
  setStep(step: StepState, inputs: StepInputs): void;

  // ── ops (Semantics: as the Kernels op of the same name, src/kernels/types.ts) ────────────────
  /** out[t, :] = table[tokens[t], :] for the step's rows. */
  embedding(step: StepState, table: EmbeddingTable, out: Tensor): void;
  rmsNorm(x: Tensor, weight: Tensor, out: Tensor, rows: number, dim: number, eps: number): void;
  /** y[M, N] = x[M, K] · Wᵀ (+ bias). */
  gemm(x: Tensor, w: PackedWeight, y: Tensor, m: number, bias?: Tensor): void;
  /**
   * The one adapter entry point: for each module of `out` and each row t of the step with slot a ≥ 0,
   * y[t, yOffset + c] += scale_a · (x[t] · A_aᵀ) · Bt_a[:, c] (the slot's adapter kind decides the exact form).
   */
  applyAdapters(bank: LoraBank, step: StepState, x: Tensor, k: number, out: AdapterOutputs): void;
  /** RoPE on the q and k heads of qkv, q → qOut, k and v → the cache rows of the step's tokens, in `layer`. */
  ropeAndCacheWrite(
    step: StepState,
    qkv: Tensor,
    shape: AttentionShape,
    invFreq: Tensor,
    qOut: Tensor,
    kv: KvCache,
    layer: number,
  ): void;
  pagedAttention(step: StepState, q: Tensor, kv: KvCache, layer: number, out: Tensor, shape: AttentionShape): void;
  /** In place on each head of strided rows (q/k norms on the fused q|k|v rows). */
  rmsNormHeads(
    x: Tensor,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    weight: Tensor,
    eps: number,
  ): void;
  siluMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void;
  geluTanhMul(gateUp: Tensor, out: Tensor, rows: number, inter: number): void;
  addInPlace(x: Tensor, y: Tensor, length: number): void;
  softcapInPlace(x: Tensor, length: number, cap: number): void;
  scaleInPlace(x: Tensor, length: number, factor: number): void;
  /** out[r, :] = x[logitRows[r], :] (dim columns) for the step's logit rows. */
  gatherLogitRows(step: StepState, x: Tensor, dim: number, out: Tensor): void;

  // ── row ranges (optional: adapters with edge modules need them; see src/adapters/kinds/edge-slots.ts) ──
  /** Elements [offset, offset + length) of t as a tensor sharing its memory (a range of rows). */
  view?(t: Tensor, offset: number, length: number): Tensor;
  /** dst[i] = src[i] for i < length. */
  copy?(src: Tensor, dst: Tensor, length: number): void;

  // ── outputs ─────────────────────────────────────────────────────────────────────────────────
  /**
   * One token per entry of `rows`: rows[i] samples logits row rowIndex[i] of logits [*, vocab] (see
   * Kernels.sample). May overwrite those rows: read any raw logits needed before.
   */
  sample(logits: Tensor, vocab: number, rowIndex: Int32Array, rows: SamplingRow[]): Int32Array;
}
