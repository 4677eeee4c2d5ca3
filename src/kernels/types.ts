/**
 * The kernel interface: buffers and shapes in, buffers out. Every implementation (the plain TypeScript
 * reference, the native CPU addon, later CUDA) provides exactly this, and one conformance suite
 * (test/kernels/) runs against each of them.
 *
 * Conventions: matrices are row-major; shapes are written as [rows, cols]; activations are f32;
 * f16/bf16 weights are raw 16-bit patterns in a Uint16Array; accumulation is always f32.
 */

/** A checkpoint's float storage dtype (configs, safetensors, KV caches, merges). */
export type WeightDType = 'f32' | 'f16' | 'bf16';
/** ggml block formats a base projection may stay in for the quantized GEMM (weight-format.ts). */
export type BlockDType = 'q8_0' | 'q4_k' | 'q6_k';
/** How a weight matrix is stored: a float dtype, or quantized blocks. */
export type MatrixDType = WeightDType | BlockDType;

/** A weight matrix W [rows = N outputs, cols = K inputs], row-major, kept in its storage dtype. */
export interface WeightMatrix {
  dtype: MatrixDType;
  rows: number;
  cols: number;
  data: Float32Array | Uint16Array | Uint8Array; // f32 → Float32Array; f16/bf16 → Uint16Array (bit patterns); q8_0/q4_k/q6_k → Uint8Array (ggml blocks, each row whole blocks)
  /**
   * Rows stacked from block matrices of different formats, each kept in its blocks (stacked-weight.ts's
   * stackBlockRows: a fused q|k|v of Q4_K and Q6_K parts); then data is empty and dtype the first part's.
   */
  parts?: readonly WeightMatrix[];
}

/**
 * A weight prepared once for fast GEMM (an implementation may re-lay it out; the reference keeps it).
 * Opaque to callers beyond its shape.
 */
export interface PackedWeight {
  readonly dtype: MatrixDType;
  readonly rows: number; // N
  readonly cols: number; // K
}

/**
 * How a LoRA bank stores adapter matrices: f32, or bf16 / f16 (rounded to nearest even when a slot is set,
 * to halve what decode reads; kernels widen to f32 exactly and accumulate in f32 as for an f32 bank), or int8
 * (each row quantized with an f32 scale: a quarter of f32's bytes; semantics in reference/lora.ts).
 */
export type LoraDtype = 'f32' | 'bf16' | 'f16' | 'int8';

/** A bank of adapter slots for LoRA kernels: slot s holds one adapter's matrices for every module. */
export interface LoraBank {
  readonly numSlots: number;
  readonly numModules: number;
  readonly dtype: LoraDtype;
}

/**
 * One adapter's weights for every module of the model, packed for a slot.
 * Module index = layer * MODULES_PER_LAYER + kind (see src/model/modules.ts).
 * For module m with rank[m] > 0:
 *   A_m  = weights[offsetA[m] .. + rank*K]  as [rank, K]   (lora_A, as stored by PEFT)
 *   Bt_m = weights[offsetB[m] .. + rank*N]  as [rank, N]   (lora_B transposed, so expand reads rows)
 *   y += scale[m] · (x · A_mᵀ) · Bt_m
 * rank[m] = 0: the module is not targeted by this adapter.
 * With an output scale (DoRA: magnitude / ‖W + ΔW‖ per column, precomputed), offsetOutScale[m] ≥ 0:
 *   s_m = outScale[offsetOutScale[m] .. + N]   and   y = s_m ⊙ (y + scale[m] · (x · A_mᵀ) · Bt_m)
 * (the caller adds the bias after). Stored in f32 whatever the bank's dtype.
 * Shared factors (VeRA, Tied-LoRA): modules may point at the same region of `weights` (same offsetA with the
 * same rank and K, or same offsetB with the same rank and N); a bank stores each such region once per slot.
 * Scaling vectors (VeRA's λd, λb), f32 in every bank dtype, where offsetRankScale[m] / offsetColumnScale[m] ≥ 0:
 *   h = fround(h ⊙ rankScale_m)   after the shrink, h = x · A_mᵀ [rank]
 *   c_n = fround(scale[m] · columnScale_m[n])   (once, at setLoraSlot), else c_n = scale[m]
 *   y[n] += c_n · Σ_j h[j] · Bt_m[j, n]
 */
export interface PackedAdapter {
  weights: Float32Array;
  rank: Int32Array; // [numModules]
  offsetA: Int32Array; // [numModules], in elements of `weights`
  offsetB: Int32Array; // [numModules]
  scale: Float32Array; // [numModules]
  inFeatures: Int32Array; // [numModules] K of each module (checked by the kernel)
  outFeatures: Int32Array; // [numModules] N of each module
  /** DoRA's per-column output scales, module m's [N] at offsetOutScale[m]; with offsetOutScale or not at all. */
  outScale?: Float32Array;
  offsetOutScale?: Int32Array; // [numModules], -1: no output scale (only targeted modules may have one)
  /**
   * Per-module rank-space scales (VeRA's λd): module m's [rank] at offsetRankScale[m] (-1: none);
   * h[j] *= rankScale[j] after the shrink. With offsetRankScale or not at all.
   */
  rankScale?: Float32Array;
  offsetRankScale?: Int32Array; // [numModules]
  /**
   * Per-column delta scales (VeRA's λb): module m's [N] at offsetColumnScale[m] (-1: none); the delta of
   * column n is scaled by scale[m]·columnScale[n]. With offsetColumnScale or not at all.
   */
  columnScale?: Float32Array;
  offsetColumnScale?: Int32Array; // [numModules]
}

/** One module of an applyAdapters call: its delta goes to y[t * yStride + yOffset + c], c < n (its N). */
export interface LoraModuleOutput {
  module: number;
  yOffset: number;
  n: number;
}

/**
 * The output of an applyAdapters call: rows of yStride elements (e.g. the fused q|k|v or gate|up
 * projection), one column range per module; the ranges must not overlap.
 */
export interface LoraMultiOutput {
  y: Float32Array;
  yStride: number;
  modules: readonly LoraModuleOutput[];
}

/**
 * The rows of one step and the slot each uses, laid out once (setLoraRows) for every applyAdapters call of
 * the step. Opaque: a backend's own handle (native: rows grouped by slot; CUDA: a device buffer).
 */
export interface LoraRows {
  readonly numRows: number;
}

/**
 * A paged KV cache buffer: f32, or bf16 bit patterns in a Uint16Array (written rounded to nearest even as
 * f32ToBf16 in dtype.ts, widened exactly on read; attention accumulates in f32 as for an f32 cache).
 * Both caches of one call share a dtype.
 */
export type KvBuffer = Float32Array | Uint16Array;

export interface AttentionBatch {
  /** [numSeqs + 1]: the queries of sequence s are rows qStart[s] .. qStart[s+1]-1 of q. */
  qStart: Int32Array;
  /** [numSeqs]: keys/values of sequence s in the cache, including this step's new ones. */
  kvLen: Int32Array;
  /** Block tables, flattened: sequence s uses blockTables[blockTableStart[s] + i] for its i-th block. */
  blockTables: Int32Array;
  blockTableStart: Int32Array; // [numSeqs]
  numSeqs: number;
}

export interface AttentionShape {
  numHeads: number; // Hq
  numKvHeads: number; // Hkv; Hq % Hkv == 0 (grouped-query)
  headDim: number; // D
  blockSize: number; // tokens per KV block
  /** > 0: the query at position p attends to keys p-W+1 .. p only (Mistral's sliding window). */
  slidingWindow?: number;
  /** score = (q·k)·scale; default 1/√D (Gemma: query_pre_attn_scalar^-0.5). Must be finite and > 0. */
  scale?: number;
  /**
   * > 0: score = softcap·tanh(score / softcap), after scaling, before the causal/sliding mask and softmax
   * (Gemma 2's attn_logit_softcapping); 0 or undefined: off.
   */
  softcap?: number;
  /**
   * ropeAndCacheWrite only: RoPE (rotate-half) on dims [0, rotaryDim) of each q/k head with invFreq
   * [rotaryDim/2], dims [rotaryDim, D) passed through (partial rotary, as Hugging Face). Even, 2..D;
   * default D.
   */
  rotaryDim?: number;
}

export interface SamplingRow {
  temperature: number; // 0 → greedy
  topK: number; // 0 or ≥ vocab → off
  topP: number; // 1 → off
  uniform: number; // a uniform draw in [0, 1) from the sequence's seeded generator
}

export interface Kernels {
  readonly name: string;

  // ── GEMM (base projections) ─────────────────────────────────────────────────────────────────
  packWeight(w: WeightMatrix): PackedWeight;
  /**
   * y[M, N] = x[M, K] · Wᵀ (+ bias[N]) ; with accumulate: y += …
   * Semantics: y[m, n] (+)= Σ_k x[m, k] · W[n, k] + bias[n]
   */
  gemm(x: Float32Array, w: PackedWeight, y: Float32Array, m: number, bias?: Float32Array, accumulate?: boolean): void;

  // ── LoRA (adapter slots; a step's rows laid out once, then every module group applied) ─────────
  createLoraBank(numSlots: number, numModules: number, dtype?: LoraDtype): LoraBank;
  /** Copies an adapter into a slot (replacing what it held). */
  setLoraSlot(bank: LoraBank, slot: number, adapter: PackedAdapter): void;
  clearLoraSlot(bank: LoraBank, slot: number): void;
  /** An empty row layout, to be filled by setLoraRows (once per step) and reused across steps. */
  createLoraRows(): LoraRows;
  /**
   * Lays out a step's rows: row t uses slot rowSlot[t] (-1: base, no delta). Rows of one slot need not be
   * contiguous. Slots are checked against the bank of each applyAdapters call (empty slot: RangeError).
   */
  setLoraRows(rows: LoraRows, rowSlot: Int32Array, numRows: number): void;
  /**
   * The adapters of a step on several modules sharing x [numRows, K] (q|k|v, gate|up, o, down).
   * Semantics: for each {module, yOffset, n} of out.modules and each row t with slot a = rowSlot[t] ≥ 0
   * whose rank_a[module] > 0:
   *   h[j] = Σ_i x[t·K + i] · A_a[j, i]
   *   h[j] = f32(h[j] · λd_a[j])   where slot a has a rank scale for the module (PackedAdapter.rankScale)
   *   c_c  = f32(scale_a · λb_a[c]) where it has a column scale (columnScale; once, at setLoraSlot), else scale_a
   *   y[t·yStride + yOffset + c] += c_c · Σ_j h[j] · Bt_a[j, c]   (c < n; native SIMD: one fma(acc, c_c, y))
   *   then, where slot a has an output scale s for the module (DoRA): y[t·yStride + yOffset + c] *= s[c],
   *   i.e. y = s · (y + delta); the caller leaves the bias out of y until after.
   * The vectors stay f32 in every bank dtype; without them the result is that of plain LoRA, bitwise.
   * Batch invariant: a row's result is bitwise the same whatever the other rows (and their slots) or the
   * other modules of the call; a slot that does not target a module (rank 0) leaves its columns untouched.
   */
  applyAdapters(bank: LoraBank, rows: LoraRows, x: Float32Array, k: number, out: LoraMultiOutput): void;

  // ── attention over the paged KV cache ───────────────────────────────────────────────────────
  /**
   * qkv [T, (Hq + 2·Hkv)·D] (q heads, then k heads, then v heads, per row). Applies RoPE (rotate-half,
   * as Hugging Face Llama) to q and k at positions[t] with angle = positions[t] · invFreq[i], i < D/2,
   * writes q into qOut [T, Hq·D], and k, v into the caches at cache row slotMapping[t]
   * (row = block · blockSize + offset; a cache is [numBlocks · blockSize, Hkv·D]; a bf16 cache (Uint16Array)
   * gets f32ToBf16 of each value). Caches of different dtypes: TypeError.
   */
  ropeAndCacheWrite(
    qkv: Float32Array,
    numTokens: number,
    shape: AttentionShape,
    positions: Int32Array,
    invFreq: Float32Array,
    qOut: Float32Array,
    kCache: KvBuffer,
    vCache: KvBuffer,
    slotMapping: Int32Array,
  ): void;
  /**
   * Causal attention of each sequence's queries over its cached keys. Query i of sequence s sits at
   * position kvLen[s] - qLen[s] + i and attends to keys 0..position (p-W+1..p with shape.slidingWindow W).
   * out [T, Hq·D]; score = (q·k)·shape.scale (default 1/√D), soft-capped when shape.softcap > 0.
   */
  pagedAttention(
    q: Float32Array,
    kCache: KvBuffer,
    vCache: KvBuffer,
    out: Float32Array,
    shape: AttentionShape,
    batch: AttentionBatch,
  ): void;

  // ── elementwise and small ops ───────────────────────────────────────────────────────────────
  /** out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · weight  (Hugging Face LlamaRMSNorm, in f32) */
  rmsNorm(x: Float32Array, weight: Float32Array, out: Float32Array, rows: number, dim: number, eps: number): void;
  /** gateUp [T, 2·I] = [gate | up] per row → out [T, I] = silu(gate) · up */
  siluMul(gateUp: Float32Array, out: Float32Array, rows: number, inter: number): void;
  /** x += y, elementwise over `length` */
  addInPlace(x: Float32Array, y: Float32Array, length: number): void;
  /**
   * In place, per head of strided rows (Qwen3 / Gemma 3 q_norm, k_norm on the fused q|k|v rows).
   * x [rows, rowStride]; head h of row r is x[r·rowStride + offset + h·headDim ..+ headDim), h < numHeads;
   * weight [headDim]; offset + numHeads·headDim ≤ rowStride.
   * Semantics: each head becomes what rmsNorm makes of one row of headDim values (LlamaRMSNorm, f32).
   * (Gemma's (1 + weight) scaling: pass 1 + weight, rounded to f32.)
   */
  rmsNormHeads(
    x: Float32Array,
    rows: number,
    rowStride: number,
    offset: number,
    numHeads: number,
    headDim: number,
    weight: Float32Array,
    eps: number,
  ): void;
  /**
   * gateUp [T, 2·I] = [gate | up] per row → out [T, I] (not overlapping gateUp); Gemma's GeGLU.
   * Semantics: out[r, i] = gelu_tanh(gate[r, i]) · up[r, i],
   *   gelu_tanh(g) = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))   (torch gelu(approximate='tanh'))
   */
  geluTanhMul(gateUp: Float32Array, out: Float32Array, rows: number, inter: number): void;
  /** Semantics: x[i] = cap·tanh(x[i] / cap) for i < length; cap finite, > 0 (Gemma's final-logit soft-capping). */
  softcapInPlace(x: Float32Array, length: number, cap: number): void;
  /** Semantics: x[i] = f32(x[i] · f32(factor)) for i < length (Gemma's embedding normaliser). */
  scaleInPlace(x: Float32Array, length: number, factor: number): void;
  /** out[t, :] = table[ids[t], :]  (table [vocab, dim] in its dtype) */
  embedding(ids: Int32Array, table: WeightMatrix, out: Float32Array, numTokens: number): void;

  // ── sampling ────────────────────────────────────────────────────────────────────────────────
  /**
   * One token per row of logits [rows, vocab]. temperature 0 → argmax (lowest index on ties).
   * Otherwise: logits / temperature → keep the topK largest (if set) → softmax → keep the smallest
   * prefix of tokens sorted by probability whose mass ≥ topP (always ≥ 1 token) → renormalise →
   * pick by inverse CDF with `uniform`, walking tokens in descending probability (ties: lower index first).
   */
  sample(logits: Float32Array, vocab: number, rows: SamplingRow[], out: Int32Array): void;
  /** log-softmax of one row, for logprobs: out[v] = logits[v] - logsumexp(logits) */
  logSoftmax(logits: Float32Array, vocab: number, out: Float32Array): void;
}
