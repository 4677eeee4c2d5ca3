/**
 * `tsx bench/quantized-serving.ts`: SmolLM2-135M-Instruct served with its projections in bf16 and kept
 * quantized (--quantize q8_0 with lm_head in blocks, the default, and with a float lm_head; q4_k, which fits
 * only down_proj's K = 1536, so its head stays float too), side by side in one process:
 * greedy agreement with bf16 over chat prompts (identical outputs; teacher-forced on bf16's greedy tokens, the
 * share of positions whose argmax agrees and bf16's top-2 margin where it does not), and batch-1 decode step
 * time (interleaved repeats, medians) against the bytes a step reads, and the throughput of 16 sequences
 * generated together (128 random prompt tokens, 32 output tokens each: prefill and batched decode).
 *
 *   npx tsx bench/quantized-serving.ts [--model DIR] [--tokens 64] [--repeats 5] [--out docs/figures/quantized-smollm2]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/backends/index.ts';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../src/engine/llm-engine.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import type { BlockDType } from '../src/kernels/types.ts';
import { weightFormat } from '../src/kernels/weight-format.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import type { LoadedModel } from '../src/model/weights.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';
import { measureMachine } from './machine.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    tokens: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const modelDir = args.model ?? join(cacheRoot(), 'smollm2', 'model-bf16');
const outputTokens = Number(args.tokens);
const repeats = Number(args.repeats);
const backend = createBackend('native');

const PROMPTS = [
  'What is the capital of France?',
  'Write a haiku about the sea.',
  'Explain what a CPU cache is in two sentences.',
  'List three fruits that are red.',
  'How do I reverse a string in Python?',
  'Why is the sky blue?',
  'Give me a short motivational quote.',
  'What is 12 times 13?',
];

const VARIANTS: { name: string; quantize?: BlockDType; quantizeLmHead?: boolean }[] = [
  { name: 'bf16' },
  { name: 'q8_0', quantize: 'q8_0' },
  { name: 'q8_0, float lm_head', quantize: 'q8_0', quantizeLmHead: false },
  { name: 'q4_k', quantize: 'q4_k' },
];

function engineOf(model: LoadedModel): LLMEngine {
  return new LLMEngine(model, { ...DEFAULT_ENGINE_OPTIONS, backend, kvCacheTokens: 8192, maxRunningSeqs: 16 });
}

/** Bytes one decode step reads from the weights: every projection as stored, and the lm_head. */
function stepBytes(model: LoadedModel): number {
  let bytes = 0;
  for (const layer of model.weights.layers)
    for (const w of Object.values(layer.linear)) bytes += weightFormat(w.dtype).bytes(w.rows, w.cols);
  const head = model.weights.lmHead;
  return bytes + weightFormat(head.dtype).bytes(head.rows, head.cols);
}

function greedy(engine: LLMEngine, prompts: number[][]): number[][] {
  return engine
    .generate(
      prompts.map((promptIds) => ({ promptIds, adapter: null, params: { maxTokens: outputTokens, temperature: 0 } })),
    )
    .map((s) => s.outputIds);
}

/** The logits at every position of prompt + continuation (the last `continuation.length` rows). */
function forcedLogits(engine: LLMEngine, prompt: number[], continuation: number[]): Float32Array[] {
  const ids = [...prompt, ...continuation];
  const [seq] = engine.generate([
    { promptIds: ids, adapter: null, params: { maxTokens: 1, temperature: 0, promptLogits: true } },
  ]);
  const all = seq.promptLogits!;
  const vocab = all.length / ids.length;
  return continuation.map((_, i) => all.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab));
}

function top2(v: Float32Array): { best: number; margin: number } {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  let second = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < v.length; i++) if (i !== best && v[i] > second) second = v[i];
  return { best, margin: v[best] - second };
}

/** Output tokens per second of `prompts` generated together, `tokens` each. */
function batchTokPerS(engine: LLMEngine, prompts: number[][], tokens: number): number {
  const t0 = performance.now();
  engine.generate(
    prompts.map((promptIds) => ({
      promptIds,
      adapter: null,
      params: { maxTokens: tokens, minTokens: tokens, temperature: 0, ignoreEos: true },
    })),
  );
  return (prompts.length * tokens) / ((performance.now() - t0) / 1000);
}

/** Median seconds of one batch-1 decode step over `steps` steps after `prompt`. */
function decodeStepSeconds(engine: LLMEngine, prompt: number[], steps: number): number {
  const seq = engine.addRequest({
    promptIds: prompt,
    adapter: null,
    params: { maxTokens: steps + 1, temperature: 0, ignoreEos: true },
  });
  engine.step();
  const times: number[] = [];
  while (!seq.isFinished) {
    const t0 = performance.now();
    engine.step();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

async function main() {
  const machine = measureMachine();
  const tokenizer = await Tokenizer.fromDir(join(cacheRoot(), 'smollm2', 'model'));
  const prompts = PROMPTS.map((p) =>
    tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }),
  );
  const models = await Promise.all(
    VARIANTS.map((v) =>
      loadModelDir(modelDir, {
        dtype: 'bf16',
        ...(v.quantize ? { quantize: v.quantize } : {}),
        ...(v.quantizeLmHead === false ? { quantizeLmHead: false } : {}),
      }),
    ),
  );
  const engines = models.map(engineOf);
  const outputs = engines.map((e) => greedy(e, prompts));
  const samples = VARIANTS.map(() => [] as number[]);
  const batch = VARIANTS.map(() => [] as number[]);
  let seed = 1;
  const batchPrompts = Array.from({ length: 16 }, () =>
    Array.from({ length: 128 }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return 1 + (seed % 49000);
    }),
  );
  for (let r = 0; r < repeats; r++) {
    for (const [i, e] of engines.entries()) batch[i].push(batchTokPerS(e, batchPrompts, 32));
    for (const [i, e] of engines.entries()) samples[i].push(decodeStepSeconds(e, prompts[r % prompts.length], 32));
  }
  // Teacher-forced on bf16's greedy tokens: does each variant pick the same next token at every position?
  const reference = prompts.map((p, j) => forcedLogits(engines[0], p, outputs[0][j]));
  const forced = engines.map((e) => {
    let agree = 0;
    let total = 0;
    const flipMargins: number[] = [];
    prompts.forEach((p, j) => {
      forcedLogits(e, p, outputs[0][j]).forEach((row, t) => {
        const want = top2(reference[j][t]);
        total++;
        if (top2(row).best === want.best) agree++;
        else flipMargins.push(Number(want.margin.toFixed(3)));
      });
    });
    return { agree, total, flipMargins };
  });
  const rows = VARIANTS.map((v, i) => {
    const same = outputs[i].filter((o, p) => o.join() === outputs[0][p].join()).length;
    const prefix = outputs[i].map((o, p) => {
      let n = 0;
      while (n < o.length && o[n] === outputs[0][p][n]) n++;
      return n;
    });
    const step = median(samples[i]);
    const bytes = stepBytes(models[i]);
    const kinds = new Set(
      models[i].weights.layers.flatMap((l) => Object.entries(l.linear).map(([k, w]) => `${k}:${w.dtype}`)),
    );
    return {
      variant: v.name,
      projections: [...kinds].join(' '),
      lmHead: models[i].weights.lmHead.dtype,
      greedyIdenticalToBf16: `${same}/${prompts.length}`,
      tokensBeforeFirstDivergence: prefix,
      bf16OutputLengths: outputs[0].map((o) => o.length),
      teacherForcedArgmaxAgreement: `${forced[i].agree}/${forced[i].total}`,
      bf16MarginsWhereArgmaxDiffers: forced[i].flipMargins,
      decodeStepMs: step * 1000,
      decodeTokPerS: 1 / step,
      speedupVsBf16: median(samples[0]) / step,
      batch16TokPerS: median(batch[i]),
      batch16VsBf16: median(batch[i]) / median(batch[0]),
      stepWeightMB: bytes / 1e6,
      weightGBs: bytes / step / 1e9,
      ofReadBandwidth: bytes / step / 1e9 / machine.readGBs,
      sample: tokenizer.decode(outputs[i][0]),
    };
  });
  const meta = {
    model: modelDir,
    isa: cpuInfo().active,
    threads: machine.threads,
    readGBs: machine.readGBs,
    outputTokens,
    repeats,
  };
  console.log(JSON.stringify(meta));
  for (const r of rows) console.log(JSON.stringify(r));
  if (args.out) writeFileSync(`${args.out}.json`, `${JSON.stringify({ machine: meta, rows }, null, 2)}\n`);
}

await main();
