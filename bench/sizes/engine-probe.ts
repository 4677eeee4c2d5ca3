/**
 * One model in its own process (so its memory goes when it exits): batch-1 decode and prefill through the offline
 * engine, with the bytes of weights a decode step reads. bench:sizes runs it once per model file and reads the
 * JSON line it prints last.
 *
 *   tsx bench/sizes/engine-probe.ts --model FILE_OR_DIR [--steps 32] [--prefill-tokens 128] [--repeats 2]
 */
import '../native-env.ts';
import { parseArgs } from 'node:util';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { SeededRandom } from '../../src/engine/rng.ts';
import { packQuantWeight } from '../../src/kernels/native/qgemm.ts';
import type { MatrixDType } from '../../src/kernels/types.ts';
import { isBlockDType, weightFormat } from '../../src/kernels/weight-format.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import type { LoadedModel } from '../../src/model/weights.ts';
import { median } from '../util.ts';

export interface EngineProbe {
  model: string;
  /** The matrices' dtypes as loaded (one, or several for mixed GGUF files such as Q4_K_M). */
  dtypes: string[];
  loadSeconds: number;
  /** Bytes of the projections and the lm_head in the model's format (a GGUF's blocks as in the file). */
  weightBytesPerToken: number;
  /** The same matrices as the native kernels hold them (re-laid blocks: Q4_K 1.111× the file's): what one
   *  decode step streams. Absent in artifacts written before it was measured. */
  heldBytesPerToken?: number;
  decodeSecondsPerToken: number;
  decodeSteps: number;
  prefillTokens: number;
  prefillSeconds: number;
  /** Greedy tokens of the batch-1 run: finite logits give tokens; the probe fails on NaN. */
  sampleTokens: number[];
}

/** Held ÷ file bytes of the native kernels' layout for a block type (1 for plain dtypes), from a packed sample. */
function heldRatio(dtype: MatrixDType): number {
  if (!isBlockDType(dtype)) return 1;
  const data = new Uint8Array(weightFormat(dtype).bytes(64, 256)); // zero blocks: valid (zero scales)
  return packQuantWeight({ dtype, rows: 64, cols: 256, data }).heldBytes / data.byteLength;
}

/** Every projection of every layer and the lm_head: the embedding lookup reads one row, negligible. */
function weightBytesPerToken(loaded: LoadedModel): { bytes: number; held: number; dtypes: string[] } {
  const { layers, lmHead } = loaded.weights;
  const matrices = [...layers.flatMap((l) => Object.values(l.linear)), lmHead].filter((w) => w !== undefined);
  const ratios = new Map<MatrixDType, number>();
  const ratio = (dtype: MatrixDType) => ratios.get(dtype) ?? ratios.set(dtype, heldRatio(dtype)).get(dtype)!;
  return {
    bytes: matrices.reduce((n, w) => n + w.data.byteLength, 0),
    held: matrices.reduce((n, w) => n + w.data.byteLength * ratio(w.dtype), 0),
    dtypes: [...new Set(matrices.map((w) => w.dtype))].sort(),
  };
}

function engineFor(loaded: LoadedModel, maxBatchTokens: number): LLMEngine {
  return new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend: createBackend('native'),
    maxLoras: 1,
    maxBatchTokens,
    maxRunningSeqs: 4,
    kvCacheTokens: 2048, // an 8B's f32 KV cache is 128 KiB a token: the default 32 Ki tokens would be 4 GiB
  });
}

/** Median seconds of one decode step of a single sequence after a 16-token prompt; and its tokens. */
function batch1Decode(engine: LLMEngine, steps: number): { seconds: number; tokens: number[] } {
  const seq = engine.addRequest({
    promptIds: Array.from({ length: 16 }, (_, i) => 1000 + 37 * i),
    adapter: null,
    params: { maxTokens: steps + 1, temperature: 0, ignoreEos: true },
  });
  engine.step(); // prefill
  const times: number[] = [];
  while (!seq.isFinished) {
    const t0 = performance.now();
    engine.step();
    times.push((performance.now() - t0) / 1000);
  }
  return { seconds: median(times), tokens: seq.outputIds.slice(0, 8) };
}

/** Median seconds of one prefill of `tokens` tokens in a single step (the first token sampled with it). */
function prefill(engine: LLMEngine, tokens: number, repeats: number, vocab: number): number {
  const rng = new SeededRandom(11);
  const times: number[] = [];
  for (let r = 0; r <= repeats; r++) {
    const promptIds = Array.from({ length: tokens }, () => 1 + Math.floor(rng.uniform() * (vocab - 1)));
    const t0 = performance.now();
    engine.generate([{ promptIds, adapter: null, params: { maxTokens: 1, temperature: 0, ignoreEos: true } }]);
    if (r > 0) times.push((performance.now() - t0) / 1000); // the first run warms the pool and the pages
  }
  return median(times);
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      model: { type: 'string' },
      steps: { type: 'string', default: '32' },
      'prefill-tokens': { type: 'string', default: '128' },
      repeats: { type: 'string', default: '2' },
    },
  });
  if (!args.model) throw new Error('--model FILE_OR_DIR is required');
  const t0 = performance.now();
  const loaded = await loadModelDir(args.model);
  const loadSeconds = (performance.now() - t0) / 1000;
  const { bytes, held, dtypes } = weightBytesPerToken(loaded);
  const prefillTokens = Number(args['prefill-tokens']);
  const engine = engineFor(loaded, prefillTokens);
  const decode = batch1Decode(engine, Number(args.steps));
  const probe: EngineProbe = {
    model: args.model,
    dtypes,
    loadSeconds,
    weightBytesPerToken: bytes,
    heldBytesPerToken: held,
    decodeSecondsPerToken: decode.seconds,
    decodeSteps: Number(args.steps),
    prefillTokens,
    prefillSeconds: prefill(engine, prefillTokens, Number(args.repeats), loaded.config.vocabSize),
    sampleTokens: decode.tokens,
  };
  console.log(JSON.stringify(probe));
}

await main();
