/**
 * The LoRA calls of one decode step as the engine makes them (q|k|v, o, gate|up and down of every layer) at 32
 * rows over 32 distinct rank-16 adapters, each on a model's real shapes: every step reads all 32 adapters' A and
 * Bt from memory (SmolLM2-135M: 313 MB in bf16, Llama-3.2-1B: 720 MB). Built on the addon's raw calls, so two
 * builds (bench:native-ab) or two bank dtypes (bench:lora-dtypes) run the same step. With `withGemm`, each call
 * is a whole projection as the engine runs it: the base GEMM (random bf16 weights), then its adapters.
 */
import type { LoraDtype } from '../src/kernels/types.ts';

/** The addon calls a step makes (native/binding/lora_binding.cpp). */
export interface LoraStepAddon {
  loraBankCreate(slots: number, modules: number, dtype: string): unknown;
  loraBankSet(
    bank: unknown,
    slot: number,
    weights: Float32Array,
    rank: Int32Array,
    offsetA: Int32Array,
    offsetB: Int32Array,
    scale: Float32Array,
    inFeatures: Int32Array,
    outFeatures: Int32Array,
  ): void;
  loraRowsCreate(): unknown;
  loraRowsSet(rows: unknown, rowSlot: Int32Array, numRows: number): void;
  loraApply(
    bank: unknown,
    x: Float32Array,
    k: number,
    y: Float32Array,
    yStride: number,
    modules: Float64Array,
    count: number,
    rows: unknown,
  ): void;
  gemmPackWeight(dtype: 'bf16', rows: number, cols: number, data: Uint16Array): unknown;
  gemm(x: Float32Array, w: unknown, y: Float32Array, m: number, bias: null, accumulate: boolean): void;
}

/** A deterministic bf16 weight [n, k] in [2^-7, 2^-6), different per layer. */
export function baseWeight(n: number, k: number, layer: number): Uint16Array {
  const w = new Uint16Array(n * k);
  for (let i = 0; i < w.length; i++) w[i] = 0x3c00 + ((i * 7919 + layer * 104729) % 4096);
  return w;
}

export interface LoraStepModel {
  name: string;
  layers: number;
  hidden: number;
  /** k and v projections' width (KV heads × head dim) */
  kv: number;
  inter: number;
}

export const LORA_STEP_MODELS: LoraStepModel[] = [
  { name: 'SmolLM2-135M', layers: 30, hidden: 576, kv: 192, inter: 1536 },
  { name: 'Llama-3.2-1B', layers: 16, hidden: 2048, kv: 512, inter: 8192 },
];
export const LORA_STEP_RANK = 16;
/** Bytes a bank stores per adapter weight (int8 rows also carry one f32 scale each: under 1 % at these widths). */
export const LORA_VALUE_BYTES: Record<LoraDtype, number> = { f32: 4, bf16: 2, f16: 2, int8: 1 };
export const LORA_STEP_ROWS = 32;

export interface LoraStep {
  /** Runs every call of the step once, adding into y. */
  run(): void;
  /** The step's output rows (zero them to compare two steps bitwise). */
  y: Float32Array;
  /** Weight values read per step (its adapters × every module's A and Bt): × bytes per value for the traffic. */
  values: number;
  /** Multiply-adds per step: each row times its adapter's every A and Bt value. */
  macs: number;
}

/** A prefill step's rows: 512 prompt tokens, 4 prompts of 128 over 4 adapters (SGMV's runs of rows). */
export const LORA_PREFILL = { rows: 512, adapters: 4 };

/**
 * A bank of `dtype` on `addon` holding 32 adapters over the model's modules, and the step over it: by default a
 * decode step (32 rows, one per adapter); `rows` over the first `adapters` in equal runs for a prefill step.
 */
export function loraStep(
  addon: LoraStepAddon,
  model: LoraStepModel,
  dtype: string,
  shape: { rows: number; adapters: number } = { rows: LORA_STEP_ROWS, adapters: LORA_STEP_ROWS },
  options: { withGemm?: boolean } = {},
): LoraStep {
  const { layers, hidden: d, kv, inter } = model;
  // q, k, v, o, gate, up, down: [in, out]
  const shapes = [
    [d, d],
    [d, kv],
    [d, kv],
    [d, d],
    [d, inter],
    [d, inter],
    [inter, d],
  ];
  // Each call: its input width, output row stride and (module, column offset, width) triples.
  const calls: { k: number; stride: number; modules: number[][] }[] = [
    {
      k: d,
      stride: d + 2 * kv,
      modules: [
        [0, 0, d],
        [1, d, kv],
        [2, d + kv, kv],
      ],
    },
    { k: d, stride: d, modules: [[3, 0, d]] },
    {
      k: d,
      stride: 2 * inter,
      modules: [
        [4, 0, inter],
        [5, inter, inter],
      ],
    },
    { k: inter, stride: d, modules: [[6, 0, d]] },
  ];
  const count = layers * shapes.length;
  const rank = new Int32Array(count).fill(LORA_STEP_RANK);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  const inFeatures = new Int32Array(count);
  const outFeatures = new Int32Array(count);
  let total = 0;
  for (let m = 0; m < count; m++) {
    const [input, output] = shapes[m % shapes.length];
    inFeatures[m] = input;
    outFeatures[m] = output;
    offsetA[m] = total;
    total += LORA_STEP_RANK * input;
    offsetB[m] = total;
    total += LORA_STEP_RANK * output;
  }
  const bank = addon.loraBankCreate(LORA_STEP_ROWS, count, dtype);
  const weights = new Float32Array(total);
  const scale = new Float32Array(count).fill(2);
  for (let slot = 0; slot < LORA_STEP_ROWS; slot++) {
    for (let i = 0; i < total; i++) weights[i] = Math.sin(i * 0.37 + slot) * 0.05;
    addon.loraBankSet(bank, slot, weights, rank, offsetA, offsetB, scale, inFeatures, outFeatures);
  }
  const rows = addon.loraRowsCreate();
  addon.loraRowsSet(
    rows,
    Int32Array.from({ length: shape.rows }, (_, t) => Math.floor((t * shape.adapters) / shape.rows)),
    shape.rows,
  );
  const x = Float32Array.from({ length: shape.rows * inter }, (_, i) => Math.cos(i));
  const y = new Float32Array(shape.rows * 2 * inter);
  const perLayer = Array.from({ length: layers }, (_, layer) =>
    calls.map((c) => ({
      ...c,
      packed: Float64Array.from(c.modules.flatMap(([m, offset, n]) => [layer * shapes.length + m, offset, n])),
      weight: options.withGemm ? addon.gemmPackWeight('bf16', c.stride, c.k, baseWeight(c.stride, c.k, layer)) : null,
    })),
  );
  const m = shape.rows;
  const gemmMacs = options.withGemm ? layers * calls.reduce((sum, c) => sum + m * c.k * c.stride, 0) : 0;
  return {
    run() {
      for (const layer of perLayer)
        for (const c of layer) {
          if (c.weight) addon.gemm(x, c.weight, y, m, null, false);
          addon.loraApply(bank, x, c.k, y, c.stride, c.packed, c.modules.length, rows);
        }
    },
    y,
    values: shape.adapters * total,
    macs: shape.rows * total + gemmMacs,
  };
}
