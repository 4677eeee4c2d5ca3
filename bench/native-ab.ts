/**
 * `npm run bench:native-ab -- --base REV`: two builds of the native addon in one process — REV (its worktree under
 * the cache, made and built once: bench/revisions/worktree.ts) and this checkout (rebuilt first) — called in turn
 * on the same inputs, the order swapped every round, so the machine's drift (minutes of it, on a shared VM) falls
 * on both alike. Reports per case the median time of each and the median over rounds of base time ÷ head time
 * (with its quartiles).
 *
 * Sections: `gemm` (bf16 weights through the bf16 dot mode — AMX tiles where the CPU has them — at the
 * Llama-3.2-1B and SmolLM2-135M projections, M from decode to a 2048-token prefill chunk; weights from memory at
 * M ≤ 32), `gemm-f32` (the same with the dot mode off: the weights widened to f32, the default path; both builds
 * must give the same bits), `gemm-layers` (each of those projections at M = 512 over every layer's own weights, as
 * a prefill step streams them from memory: SmolLM2's 30 layers, two of 1B's), `sample` (flat 128 256-token rows as
 * random-weight models give, temperature 1: one row and 32; both
 * builds must pick the same tokens) and `lora` (every applyAdapters call of one decode step — q|k|v, o, gate|up and
 * down of each layer — at 32 rows over 32 distinct rank-16 adapters in a bf16 bank, SmolLM2-135M's and
 * Llama-3.2-1B's shapes: 313 and 720 MB of adapter weights a step, read from memory; both builds must give the same
 * bits), `qgemm` (Q4_K blocks at the Llama-3.2-1B and Llama-3.1-8B projections, M from decode to a 512-token
 * prefill chunk, weights from memory at M = 1; both builds must give the same bits).
 *
 *   npm run bench:native-ab -- --base 27d6157
 *     [--sections gemm,gemm-f32,gemm-layers,sample,lora,lora-rows,attention,lora-bf16dot,projections-bf16dot,qgemm]
 *     [--rounds 21] [--isa avx2] [--out docs/figures/native-ab]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import {
  baseWeight,
  LORA_PREFILL,
  LORA_STEP_MODELS,
  LORA_STEP_ROWS,
  type LoraStep,
  type LoraStepAddon,
  loraStep,
} from './lora-step.ts';
import { randomWeight } from './qgemm.ts';
import { ensureWorktree, workingTree } from './revisions/worktree.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    sections: { type: 'string', default: 'gemm,sample,lora' },
    rounds: { type: 'string', default: '21' },
    out: { type: 'string', default: 'artifacts/native-ab' },
    /** Cap both builds' ISA (scalar, avx2, avx512, avx512bf16), as LORAPLEX_ISA does; default: the best. */
    isa: { type: 'string' },
  },
});
if (!args.base) throw new Error('--base REV is required (the build to compare this checkout with)');

/** The addon calls this script makes (see native/binding). */
interface Addon extends LoraStepAddon {
  qgemmPackWeight(type: string, rows: number, cols: number, data: Uint8Array): unknown;
  qgemm(x: Float32Array, w: unknown, y: Float32Array, m: number, bias: Float32Array | null, accumulate: boolean): void;
  gemmSetBf16Dot(enabled: boolean, allowAmx: boolean): boolean;
  gemmBf16DotPath(): string;
  sample(logits: Float32Array, vocab: number, params: Float64Array, rows: number, out: Int32Array): void;
  measureReadBandwidth(bytes: number, passes: number): { value: number };
  setIsa(isa: string): string;
  pagedAttention(
    q: Float32Array,
    kCache: Float32Array | Uint16Array,
    vCache: Float32Array | Uint16Array,
    out: Float32Array,
    heads: number,
    kvHeads: number,
    headDim: number,
    blockSize: number,
    qStart: Int32Array,
    kvLen: Int32Array,
    blockTables: Int32Array,
    blockTableStart: Int32Array,
    numSeqs: number,
    slidingWindow: number,
    scale: number | undefined,
    softcap: number,
  ): void;
}

interface Case {
  section: string;
  name: string;
  /** Work per call, for the rate columns: FLOPs (gemm) or rows (sample). */
  work: number;
  baseMs: number;
  headMs: number;
  /** Median over rounds of base ms ÷ head ms, and its quartiles. */
  speedup: number;
  q1: number;
  q3: number;
}

const ROOT = join(import.meta.dirname, '..');
const log = (line: string) => console.error(line);
const rounds = Number(args.rounds);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)];

interface Hooks {
  /** Before each timed call (e.g. flush the caches). */
  beforeCall?: () => void;
  /** Before each round: both builds then run on the same inputs. */
  beforeRound?: () => void;
  /** After each round (e.g. check both builds gave the same answer). */
  afterRound?: () => void;
}

/** Times `run(addon)` on both builds `rounds` times, alternating which goes first. */
function pairTimes(base: Addon, head: Addon, run: (addon: Addon) => void, hooks: Hooks = {}) {
  run(base);
  run(head);
  const times = { base: [] as number[], head: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    hooks.beforeRound?.();
    const order: Array<'base' | 'head'> = r % 2 === 0 ? ['base', 'head'] : ['head', 'base'];
    for (const side of order) {
      hooks.beforeCall?.();
      const t0 = performance.now();
      run(side === 'base' ? base : head);
      times[side].push(performance.now() - t0);
    }
    hooks.afterRound?.();
  }
  const ratios = times.base.map((b, i) => b / times.head[i]);
  return {
    baseMs: median(times.base),
    headMs: median(times.head),
    speedup: median(ratios),
    q1: quantile(ratios, 0.25),
    q3: quantile(ratios, 0.75),
  };
}

/** Reads 256 MiB, a line at a time, so the next call's weights come from memory, not from a cache. */
function cacheFlusher(): () => number {
  const evict = new Float32Array(64 << 20);
  return () => {
    let sum = 0;
    for (let i = 0; i < evict.length; i += 16) sum += evict[i];
    return sum;
  };
}

// The fused projections (q|k|v, gate|up, down) of Llama-3.2-1B (hidden 2048) and SmolLM2-135M (hidden 576).
const GEMM_SHAPES = [
  { name: '1B q|k|v', n: 3072, k: 2048 },
  { name: '1B gate|up', n: 16384, k: 2048 },
  { name: '1B down', n: 2048, k: 8192 },
  { name: 'SmolLM2 q|k|v', n: 960, k: 576 },
  { name: 'SmolLM2 gate|up', n: 3072, k: 576 },
  { name: 'SmolLM2 down', n: 576, k: 1536 },
];
const GEMM_M = [1, 32, 128, 512, 2048];

/**
 * Section `gemm`: bf16 weights through the bf16 dot mode (AMX where there is one). Section `gemm-f32`: the same
 * weights widened to f32, the default path (the f32 tiles), where both builds must give the same bits.
 */
function gemmCases(base: Addon, head: Addon, section: 'gemm' | 'gemm-f32'): Case[] {
  const dot = section === 'gemm';
  for (const addon of [base, head]) {
    if (addon.gemmSetBf16Dot(dot, true) !== dot) throw new Error('this CPU has no bf16 dot products (AVX-512 BF16)');
  }
  log(`${section}: bf16 dot path ${head.gemmBf16DotPath()}`);
  const flush = cacheFlusher(); // the weights come from memory where M ≤ 32
  const cases: Case[] = [];
  for (const shape of GEMM_SHAPES) {
    const w = baseWeight(shape.n, shape.k, 0);
    const packed = {
      base: base.gemmPackWeight('bf16', shape.n, shape.k, w),
      head: head.gemmPackWeight('bf16', shape.n, shape.k, w),
    };
    for (const m of GEMM_M) {
      const x = Float32Array.from({ length: m * shape.k }, (_, i) => Math.sin(i));
      const ys = { base: new Float32Array(m * shape.n), head: new Float32Array(m * shape.n) };
      const timed = pairTimes(
        base,
        head,
        (addon) => {
          const side = addon === base ? 'base' : 'head';
          addon.gemm(x, packed[side], ys[side], m, null, false);
        },
        {
          beforeCall: m <= 32 ? flush : undefined,
          afterRound: dot
            ? undefined
            : () => {
                const [a, b] = [ys.base, ys.head].map((y) => new Uint32Array(y.buffer));
                if (a.some((v, i) => v !== b[i]))
                  throw new Error(`${section} ${shape.name}: the builds gave different bits`);
              },
        },
      );
      cases.push({
        section,
        name: `${shape.name} ${shape.n}×${shape.k}, M=${m}`,
        work: 2 * m * shape.n * shape.k,
        ...timed,
      });
      log(`${section} ${shape.name} M=${m}: ×${timed.speedup.toFixed(3)}`);
    }
  }
  for (const addon of [base, head]) addon.gemmSetBf16Dot(false, true); // the sections after run the default
  return cases;
}

// A prefill step's projections as the engine streams them: every layer its own bf16 weights (SmolLM2-135M's 30
// layers, 106 MB; two of Llama-3.2-1B's, 240 MB), so each call's weights come from memory, not from a cache.
/** A decoder layer's projections, fused as the engine runs them (q|k|v, o, gate|up, down). */
const layerProjections = (hidden: number, intermediate: number, kvWidth: number) => [
  { name: 'q|k|v', n: hidden + 2 * kvWidth, k: hidden },
  { name: 'o', n: hidden, k: hidden },
  { name: 'gate|up', n: 2 * intermediate, k: hidden },
  { name: 'down', n: hidden, k: intermediate },
];
const GEMM_LAYER_MODELS = [
  { name: 'SmolLM2', layers: 30, shapes: layerProjections(576, 1536, 192) },
  { name: '1B', layers: 2, shapes: layerProjections(2048, 8192, 512) },
];
const GEMM_LAYER_M = 512;

/** Section `gemm-layers`: each projection over all layers' weights at M = 512; both builds must give the same bits. */
function gemmLayerCases(base: Addon, head: Addon): Case[] {
  for (const addon of [base, head]) {
    if (!addon.gemmSetBf16Dot(true, true)) throw new Error('this CPU has no bf16 dot products (AVX-512 BF16)');
  }
  log(`gemm-layers: bf16 dot path ${head.gemmBf16DotPath()}`);
  const m = GEMM_LAYER_M;
  const cases: Case[] = [];
  for (const model of GEMM_LAYER_MODELS)
    for (const shape of model.shapes) {
      const weights = Array.from({ length: model.layers }, (_, layer) => baseWeight(shape.n, shape.k, layer));
      const packed = new Map(
        [base, head].map((addon) => [addon, weights.map((w) => addon.gemmPackWeight('bf16', shape.n, shape.k, w))]),
      );
      const x = Float32Array.from({ length: m * shape.k }, (_, i) => Math.sin(i));
      const ys = new Map([base, head].map((addon) => [addon, new Float32Array(m * shape.n)]));
      const timed = pairTimes(
        base,
        head,
        (addon) => {
          for (const w of packed.get(addon)!) addon.gemm(x, w, ys.get(addon)!, m, null, false);
        },
        {
          afterRound: () => {
            const [a, b] = [...ys.values()].map((y) => new Uint32Array(y.buffer));
            if (a.some((v, i) => v !== b[i]))
              throw new Error(`gemm-layers ${shape.name}: the builds gave different bits`);
          },
        },
      );
      cases.push({
        section: 'gemm-layers',
        name: `${model.name} ${shape.name} ${shape.n}×${shape.k}, M=${m}, ${model.layers} layers' weights`,
        work: 2 * m * shape.n * shape.k * model.layers,
        ...timed,
      });
      log(`gemm-layers ${model.name} ${shape.name}: ×${timed.speedup.toFixed(3)}`);
    }
  for (const addon of [base, head]) addon.gemmSetBf16Dot(false, true);
  return cases;
}

// The fused projections of Llama-3.2-1B and Llama-3.1-8B in Q4_K blocks (random bytes, small finite scales).
const QGEMM_SHAPES = [
  ...GEMM_SHAPES.filter((s) => s.name.startsWith('1B')),
  { name: '8B q|k|v', n: 6144, k: 4096 },
  { name: '8B gate|up', n: 28672, k: 4096 },
  { name: '8B down', n: 4096, k: 14336 },
];
const QGEMM_M = [1, 32, 128, 512];

/** Section `qgemm`: Q4_K weights, decode to prefill; both builds must give the same bits. */
function qgemmCases(base: Addon, head: Addon): Case[] {
  const flush = cacheFlusher(); // the weights come from memory at M = 1
  const cases: Case[] = [];
  for (const shape of QGEMM_SHAPES) {
    const w = randomWeight('q4_k', shape.n, shape.k);
    const packed = new Map(
      [base, head].map((addon) => [addon, addon.qgemmPackWeight('q4_k', shape.n, shape.k, w.data as Uint8Array)]),
    );
    for (const m of QGEMM_M) {
      const x = Float32Array.from({ length: m * shape.k }, (_, i) => Math.sin(i));
      const ys = new Map([base, head].map((addon) => [addon, new Float32Array(m * shape.n)]));
      const timed = pairTimes(
        base,
        head,
        (addon) => addon.qgemm(x, packed.get(addon), ys.get(addon)!, m, null, false),
        {
          beforeCall: m === 1 ? flush : undefined,
          afterRound: () => {
            const [a, b] = [...ys.values()].map((y) => new Uint32Array(y.buffer));
            if (a.some((v, i) => v !== b[i]))
              throw new Error(`qgemm ${shape.name} M=${m}: the builds gave different bits`);
          },
        },
      );
      cases.push({
        section: 'qgemm',
        name: `Q4_K ${shape.name} ${shape.n}×${shape.k}, M=${m}`,
        work: 2 * m * shape.n * shape.k,
        ...timed,
      });
      log(`qgemm ${shape.name} M=${m}: ×${timed.speedup.toFixed(3)}`);
    }
  }
  return cases;
}

function sampleCases(base: Addon, head: Addon): Case[] {
  const vocab = 128256;
  let seed = 12345;
  const uniform = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const cases: Case[] = [];
  for (const rows of [1, 32]) {
    const logits = new Float32Array(rows * vocab);
    for (let v = 0; v < logits.length; v++) {
      logits[v] = 0.9 * Math.sqrt(-2 * Math.log(uniform() || 1e-9)) * Math.cos(2 * Math.PI * uniform());
    }
    const params = new Float64Array(rows * 4);
    for (let r = 0; r < rows; r++) params.set([1, 0, 1, 0.5], 4 * r);
    const tokens = { base: new Int32Array(rows), head: new Int32Array(rows) };
    const timed = pairTimes(
      base,
      head,
      (addon) => addon.sample(logits, vocab, params, rows, addon === base ? tokens.base : tokens.head),
      {
        beforeRound: () => {
          for (let r = 0; r < rows; r++) params.set([1, 0, 1, uniform()], 4 * r);
        },
        afterRound: () => {
          if (tokens.base.join() !== tokens.head.join()) throw new Error('the two builds sampled different tokens');
        },
      },
    );
    cases.push({
      section: 'sample',
      name: `${rows} row${rows > 1 ? 's' : ''} × ${vocab}, flat, T=1`,
      work: rows,
      ...timed,
    });
    log(`sample ${rows} rows: ×${timed.speedup.toFixed(3)}`);
  }
  return cases;
}

/** The memory read bandwidth measured in the lora section's run (GB/s, best of 5 passes over 512 MiB). */
let readBandwidth: number | undefined;

/** A LoRA step built on each build, timed in pairs; both builds must give the same bits every round. */
function pairedSteps(base: Addon, head: Addon, what: string, build: (addon: Addon) => LoraStep) {
  const steps = new Map([base, head].map((addon) => [addon, build(addon)]));
  const timed = pairTimes(base, head, (addon) => steps.get(addon)!.run(), {
    beforeRound: () => {
      for (const step of steps.values()) step.y.fill(0);
    },
    afterRound: () => {
      const [a, b] = [...steps.values()].map((step) => new Uint32Array(step.y.buffer));
      if (a.some((v, i) => v !== b[i])) throw new Error(`${what}: the two builds gave different bits`);
    },
  });
  return { step: steps.get(head)!, timed };
}

function loraCases(base: Addon, head: Addon): Case[] {
  const cases: Case[] = [];
  for (const model of LORA_STEP_MODELS) {
    const { step, timed } = pairedSteps(base, head, `lora ${model.name}`, (addon) => loraStep(addon, model, 'bf16'));
    cases.push({
      section: 'lora',
      name: `${model.name} decode step, ${LORA_STEP_ROWS} rows over ${LORA_STEP_ROWS} adapters (bf16 bank)`,
      work: step.values * 2,
      ...timed,
    });
    log(`lora ${model.name}: ×${timed.speedup.toFixed(3)}`);
  }
  readBandwidth = head.measureReadBandwidth(512 << 20, 5).value;
  return cases;
}

/**
 * Section `lora-rows`: the row kernels (the bf16 dot mode off), at a decode step in bf16 and int8 banks and a
 * prefill step (512 rows over 4 adapters) in a bf16 bank; both builds must give the same bits.
 */
function loraRowCases(base: Addon, head: Addon): Case[] {
  const cases: Case[] = [];
  const shapes = [
    { label: 'decode', dtype: 'bf16', rows: LORA_STEP_ROWS, adapters: LORA_STEP_ROWS },
    { label: 'decode', dtype: 'int8', rows: LORA_STEP_ROWS, adapters: LORA_STEP_ROWS },
    { label: 'prefill', dtype: 'bf16', ...LORA_PREFILL },
  ];
  for (const model of LORA_STEP_MODELS)
    for (const { label, dtype, ...shape } of shapes) {
      const what = `lora-rows ${model.name} ${label} ${dtype}`;
      const { step, timed } = pairedSteps(base, head, what, (addon) => loraStep(addon, model, dtype, shape));
      cases.push({
        section: 'lora-rows',
        name: `${model.name} ${label} step, ${shape.rows} rows over ${shape.adapters} adapters (${dtype} bank)`,
        work: 2 * step.macs,
        ...timed,
      });
      log(`${what}: ×${timed.speedup.toFixed(3)}`);
    }
  return cases;
}

/**
 * The same LoRA calls with the bf16 dot mode on in both builds (the AMX path where there is one), at a decode
 * step and a prefill step (512 rows over 4 adapters). Builds that compute differently there are compared by
 * time only; each build's result must be the same every round. Section `projections-bf16dot`: each call a whole
 * projection, its base GEMM (bf16 weights) then its adapters, as the engine's step makes them.
 */
function loraBf16DotCases(base: Addon, head: Addon, section: string): Case[] {
  const withGemm = section === 'projections-bf16dot';
  for (const addon of [base, head])
    if (!addon.gemmSetBf16Dot(true, true)) throw new Error('this CPU has no bf16 dot products (AVX-512 BF16)');
  log(`${section}: bf16 dot path ${head.gemmBf16DotPath()}`);
  const cases: Case[] = [];
  const shapes = [
    { label: 'decode', rows: LORA_STEP_ROWS, adapters: LORA_STEP_ROWS },
    { label: 'prefill', ...LORA_PREFILL },
  ];
  for (const model of LORA_STEP_MODELS)
    for (const shape of shapes) {
      const steps = new Map([base, head].map((addon) => [addon, loraStep(addon, model, 'bf16', shape, { withGemm })]));
      const first = new Map<Addon, Uint32Array>();
      const timed = pairTimes(base, head, (addon) => steps.get(addon)!.run(), {
        beforeRound: () => {
          for (const step of steps.values()) step.y.fill(0);
        },
        afterRound: () => {
          for (const [addon, step] of steps) {
            const bits = new Uint32Array(step.y.buffer).slice();
            const seen = first.get(addon);
            if (!seen) first.set(addon, bits);
            else if (seen.some((v, i) => v !== bits[i]))
              throw new Error(`${section} ${model.name}: a build changed its bits`);
          }
        },
      });
      const step = steps.get(head)!;
      if (withGemm) {
        const [a, b] = [...steps.values()].map((s) => new Uint32Array(s.y.buffer));
        if (a.some((v, i) => v !== b[i]))
          throw new Error(`${section} ${model.name}: the two builds gave different bits`);
      }
      cases.push({
        section,
        name: `${model.name} ${shape.label} step, ${shape.rows} rows over ${shape.adapters} adapters (bf16 bank)${withGemm ? ' with the base GEMMs' : ''}`,
        work: 2 * step.macs,
        ...timed,
      });
      log(`${section} ${model.name} ${shape.label}: ×${timed.speedup.toFixed(3)}`);
    }
  for (const addon of [base, head]) addon.gemmSetBf16Dot(false, true);
  readBandwidth = head.measureReadBandwidth(512 << 20, 5).value;
  return cases;
}

// Attention at the shapes a W3 wave gives: prefill steps of 4 prompts × 128 tokens (each from position 0) and a
// decode step of 32 sequences at 192 cached tokens, SmolLM2-135M's heads (9 / 3, D = 64), Llama-3.2-1B's (32 / 8,
// D = 64) and Llama-3.1-8B's (32 / 8, D = 128).
const ATTENTION_SHAPES = [
  { name: 'SmolLM2', heads: 9, kvHeads: 3, headDim: 64 },
  { name: '1B', heads: 32, kvHeads: 8, headDim: 64 },
  { name: '8B', heads: 32, kvHeads: 8, headDim: 128 },
];
const ATTENTION_STEPS = [
  { label: 'prefill 4 × 128', seqs: 4, queries: 128, context: 128, kv: 'f32' },
  { label: 'prefill 4 × 128', seqs: 4, queries: 128, context: 128, kv: 'bf16' },
  { label: 'decode 32 × 192', seqs: 32, queries: 1, context: 192, kv: 'f32' },
] as const;

const waveValues = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
const toBf16 = (x: Float32Array) => Uint16Array.from(x, f32ToBf16);

/** Section `attention`: paged attention per step; both builds must give the same bits. */
function attentionCases(base: Addon, head: Addon): Case[] {
  const cases: Case[] = [];
  const blockSize = 16;
  for (const shape of ATTENTION_SHAPES)
    for (const step of ATTENTION_STEPS) {
      const perSeq = Math.ceil(step.context / blockSize);
      const blocks = step.seqs * perSeq;
      const rowWidth = shape.kvHeads * shape.headDim;
      const k = waveValues(blocks * blockSize * rowWidth, 1);
      const v = waveValues(blocks * blockSize * rowWidth, 2);
      const [kCache, vCache] = step.kv === 'f32' ? [k, v] : [toBf16(k), toBf16(v)];
      const q = waveValues(step.seqs * step.queries * shape.heads * shape.headDim, 3);
      const outs = new Map([base, head].map((addon) => [addon, new Float32Array(q.length)]));
      const args = [
        Int32Array.from({ length: step.seqs + 1 }, (_, s) => s * step.queries),
        new Int32Array(step.seqs).fill(step.context),
        Int32Array.from({ length: blocks }, (_, i) => (i * 7919) % blocks), // scattered blocks, as a busy cache
        Int32Array.from({ length: step.seqs }, (_, s) => s * perSeq),
      ] as const;
      const timed = pairTimes(
        base,
        head,
        (addon) =>
          addon.pagedAttention(
            q,
            kCache,
            vCache,
            outs.get(addon)!,
            shape.heads,
            shape.kvHeads,
            shape.headDim,
            blockSize,
            ...args,
            step.seqs,
            0,
            undefined,
            0,
          ),
        {
          afterRound: () => {
            const [a, b] = [...outs.values()].map((out) => new Uint32Array(out.buffer));
            if (a.some((x, i) => x !== b[i]))
              throw new Error(`attention ${shape.name}: the builds gave different bits`);
          },
        },
      );
      const keys = step.queries === 1 ? step.context : (step.queries * (step.queries + 1)) / 2;
      cases.push({
        section: 'attention',
        name: `${shape.name} (${shape.heads} / ${shape.kvHeads} heads, D = ${shape.headDim}) ${step.label}, ${step.kv} KV`,
        work: 4 * shape.headDim * shape.heads * step.seqs * keys,
        ...timed,
      });
      log(`attention ${shape.name} ${step.label} ${step.kv}: ×${timed.speedup.toFixed(3)}`);
    }
  return cases;
}

const baseCheckout = ensureWorktree(ROOT, args.base!); // cached per commit, as bench:revisions keeps them
const headCheckout = workingTree(ROOT);
const baseRev = baseCheckout.sha.slice(0, 7);
const headRev = headCheckout.sha.slice(0, 7);
const dirty = headCheckout.dirty;
log('building this checkout');
execFileSync('npx', ['cmake-js', 'compile', '--release', '--out', 'build'], {
  cwd: ROOT,
  stdio: ['ignore', 'ignore', 'inherit'],
});
const load = (dir: string) => createRequire(import.meta.url)(join(dir, 'build/Release/loraplex_native.node')) as Addon;
const [base, head] = [load(baseCheckout.dir), load(ROOT)];
if (args.isa) base.setIsa(args.isa);
const isa = args.isa ? head.setIsa(args.isa) : undefined;
const sections = args.sections!.split(',');
let cases: Case[] = [];
for (const section of ['gemm', 'gemm-f32'] as const)
  if (sections.includes(section)) cases = cases.concat(gemmCases(base, head, section));
if (sections.includes('gemm-layers')) cases = cases.concat(gemmLayerCases(base, head));
if (sections.includes('qgemm')) cases = cases.concat(qgemmCases(base, head));
if (sections.includes('sample')) cases = cases.concat(sampleCases(base, head));
if (sections.includes('lora')) cases = cases.concat(loraCases(base, head));
if (sections.includes('lora-rows')) cases = cases.concat(loraRowCases(base, head));
if (sections.includes('attention')) cases = cases.concat(attentionCases(base, head));
for (const section of ['lora-bf16dot', 'projections-bf16dot'])
  if (sections.includes(section)) cases = cases.concat(loraBf16DotCases(base, head, section));

const rate = (c: Case, ms: number) =>
  c.section.startsWith('gemm') ||
  c.section === 'qgemm' ||
  c.section === 'lora-rows' ||
  c.section === 'attention' ||
  c.section.endsWith('-bf16dot')
    ? `${(c.work / ms / 1e6).toFixed(0)} GFLOP/s`
    : c.section === 'lora'
      ? `${(c.work / ms / 1e6).toFixed(1)} GB/s`
      : `${(ms / c.work).toFixed(2)} ms/row`;
const lines = [
  `Native addon, ${baseRev} (base) against ${headRev}${dirty ? ' with uncommitted changes' : ''} (head), both loaded in ` +
    `one process and called in turn on the same inputs, the order swapped every round; ${rounds} rounds, medians ` +
    '(`npm run bench:native-ab`). Speed-up: the median over rounds of base time ÷ head time [quartiles].' +
    (readBandwidth ? ` Memory read bandwidth in the same run: ${readBandwidth.toFixed(1)} GB/s.` : '') +
    (isa ? ` Both builds capped to the ${isa} kernels (--isa).` : ''),
  '',
  '| section | case | base | head | speed-up |',
  '|---|---|---|---|---|',
  ...cases.map(
    (c) =>
      `| ${c.section} | ${c.name} | ${rate(c, c.baseMs)} | ${rate(c, c.headMs)} | ×${c.speedup.toFixed(3)} [${c.q1.toFixed(3)}–${c.q3.toFixed(3)}] |`,
  ),
];
const md = `${lines.join('\n')}\n`;
writeFileSync(`${args.out}.md`, md);
writeFileSync(
  `${args.out}.json`,
  `${JSON.stringify({ base: baseRev, head: headRev, dirty, rounds, isa, generated: new Date().toISOString(), readBandwidth, cases }, null, 1)}\n`,
);
console.log(md);
