/**
 * `npm run bench:quantized-wave-ab`: one synchronized wave of prompts through the offline engine on a quantized
 * model (Q4_K by default, from bf16 safetensors with --quantize, or a GGUF as stored), with the Q4_K GEMM's
 * AMX-INT8 batches on and off in alternate waves of one process, the order swapped every pair, so the machine's
 * drift falls on both alike. Both must give the same tokens (the two paths compute the same bits). Reports per
 * side the median wave time to the last first token (its prefill), the decode time after it and the whole wave,
 * and the median over pairs of off ÷ on.
 *
 *   npm run bench:quantized-wave-ab -- [--model DIR_OR_GGUF] [--quantize q4_k|none] [--prompts 32]
 *     [--prompt-tokens 128] [--output-tokens 16] [--max-batch-tokens 512] [--pairs 4] [--out docs/figures/NAME]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/backends/index.ts';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../src/engine/llm-engine.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { setQgemmAmx } from '../src/kernels/native/qgemm.ts';
import type { BlockDType } from '../src/kernels/types.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(cacheRoot(), 'bench-models', 'llama3-1b', 'model') },
    quantize: { type: 'string', default: 'q4_k' },
    prompts: { type: 'string', default: '32' },
    'prompt-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '16' },
    'max-batch-tokens': { type: 'string', default: '512' },
    pairs: { type: 'string', default: '4' },
    out: { type: 'string', default: 'artifacts/quantized-wave-ab' },
  },
});
const log = (line: string) => console.error(line);
/** The model as the artifact names it: under the cache root as `bench-models/…`, not this machine's path. */
const modelLabel = relative(cacheRoot(), args.model!).startsWith('..')
  ? args.model!
  : relative(cacheRoot(), args.model!);
const prompts = Number(args.prompts);
const promptTokens = Number(args['prompt-tokens']);
const outputTokens = Number(args['output-tokens']);

type Side = 'amx' | 'vnni';
interface Wave {
  side: Side;
  /** Seconds from the wave's start to the last request's first token (every prompt prefilled). */
  prefillSeconds: number;
  /** Seconds after that to the last token. */
  decodeSeconds: number;
  totalSeconds: number;
  tokens: number[][];
}

const t0 = performance.now();
const loaded = await loadModelDir(args.model!, {
  quantize: args.quantize === 'none' ? undefined : (args.quantize as BlockDType),
});
const dtypes = [...new Set(loaded.weights.layers.flatMap((l) => Object.values(l.linear).map((w) => w?.dtype)))];
log(`loaded ${args.model} (${dtypes.join(', ')}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
if (!setQgemmAmx(true)) throw new Error('Q4_K batches do not run on AMX-INT8 here (no AMX-INT8, or not the VNNI ISA)');

const engine = new LLMEngine(loaded, {
  ...DEFAULT_ENGINE_OPTIONS,
  backend: createBackend('native'),
  maxLoras: 1,
  maxBatchTokens: Number(args['max-batch-tokens']),
  maxRunningSeqs: prompts,
  kvCacheTokens: prompts * (promptTokens + outputTokens) + 256,
});
const rng = new SeededRandom(7);
const vocab = loaded.config.vocabSize;
const promptIds = Array.from({ length: prompts }, () =>
  Array.from({ length: promptTokens }, () => 1 + Math.floor(rng.uniform() * (vocab - 1))),
);

function wave(side: Side): Wave {
  setQgemmAmx(side === 'amx');
  const start = performance.now();
  const seqs = promptIds.map((ids) =>
    engine.addRequest({
      promptIds: ids,
      adapter: null,
      params: { maxTokens: outputTokens, temperature: 0, ignoreEos: true },
    }),
  );
  let prefilled = 0;
  while (seqs.some((s) => !s.isFinished)) {
    engine.step();
    if (prefilled === 0 && seqs.every((s) => s.outputIds.length > 0)) prefilled = performance.now();
  }
  const end = performance.now();
  return {
    side,
    prefillSeconds: (prefilled - start) / 1000,
    decodeSeconds: (end - prefilled) / 1000,
    totalSeconds: (end - start) / 1000,
    tokens: seqs.map((s) => s.outputIds.slice()),
  };
}

wave('amx'); // warm the pool, the pages and the scratch buffers
wave('vnni');
const waves: Wave[] = [];
for (let p = 0; p < Number(args.pairs); p++) {
  const order: Side[] = p % 2 === 0 ? ['vnni', 'amx'] : ['amx', 'vnni'];
  const pair = order.map(wave);
  const [a, b] = pair.map((w) => JSON.stringify(w.tokens));
  if (a !== b) throw new Error(`pair ${p}: the AMX and VNNI waves gave different tokens`);
  waves.push(...pair);
  log(
    pair
      .map((w) => `${w.side} prefill ${w.prefillSeconds.toFixed(2)} s, wave ${w.totalSeconds.toFixed(2)} s`)
      .join('; '),
  );
}
setQgemmAmx(true);

const of = (side: Side) => waves.filter((w) => w.side === side);
const ratios = (key: 'prefillSeconds' | 'decodeSeconds' | 'totalSeconds') =>
  median(of('vnni').map((w, i) => w[key] / of('amx')[i][key]));
const summary = {
  model: modelLabel,
  dtypes,
  quantize: args.quantize,
  prompts,
  promptTokens,
  outputTokens,
  maxBatchTokens: Number(args['max-batch-tokens']),
  threads: cpuInfo().threads,
  isa: cpuInfo().active,
  generated: new Date().toISOString(),
  medians: Object.fromEntries(
    (['amx', 'vnni'] as const).map((side) => [
      side,
      {
        prefillSeconds: median(of(side).map((w) => w.prefillSeconds)),
        decodeSeconds: median(of(side).map((w) => w.decodeSeconds)),
        totalSeconds: median(of(side).map((w) => w.totalSeconds)),
        prefillTokensPerSecond: (prompts * promptTokens) / median(of(side).map((w) => w.prefillSeconds)),
      },
    ]),
  ),
  speedup: { prefill: ratios('prefillSeconds'), decode: ratios('decodeSeconds'), wave: ratios('totalSeconds') },
  waves: waves.map(({ tokens: _, ...w }) => w),
};
const m = summary.medians;
const md = [
  `One wave of ${prompts} prompts × ${promptTokens} tokens, ${outputTokens} output tokens each, ${summary.maxBatchTokens} ` +
    `tokens a step, ${modelLabel} (${dtypes.join(', ')}), ${summary.threads} threads (${summary.isa}); Q4_K batches ` +
    `on AMX-INT8 and on VNNI in alternate waves of one process, ${args.pairs} pairs, medians, the same tokens ` +
    '(`npm run bench:quantized-wave-ab`).',
  '',
  '| | prefill (s) | prompt tok/s | decode after it (s) | wave (s) |',
  '|---|---|---|---|---|',
  ...(['vnni', 'amx'] as const).map(
    (s) =>
      `| ${s} | ${m[s].prefillSeconds.toFixed(2)} | ${m[s].prefillTokensPerSecond.toFixed(0)} | ${m[s].decodeSeconds.toFixed(2)} | ${m[s].totalSeconds.toFixed(2)} |`,
  ),
  `| vnni ÷ amx (median of pairs) | ×${summary.speedup.prefill.toFixed(2)} | | ×${summary.speedup.decode.toFixed(2)} | ×${summary.speedup.wave.toFixed(2)} |`,
];
writeFileSync(`${args.out}.md`, `${md.join('\n')}\n`);
writeFileSync(`${args.out}.json`, `${JSON.stringify(summary, null, 1)}\n`);
console.log(md.join('\n'));
