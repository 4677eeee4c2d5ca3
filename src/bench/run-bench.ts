/**
 * A whole benchmark: tokenizer, models, prompts, then each load point of the sweep in turn (warm-up, then
 * the measured run), summarized into one BenchResult. HTTP only: it knows nothing of the server's insides.
 *
 *   const { result } = await runBench({ ...DEFAULT_OPTIONS, url: 'http://127.0.0.1:8000', numAdapters: 4 });
 */
import { createModelSelector } from './adapter-selection.ts';
import { BenchClient } from './client.ts';
import { type DatasetEntry, loadDataset } from './dataset.ts';
import { runLoad } from './load.ts';
import { summarizeByModel } from './metrics.ts';
import { resolveModels } from './models.ts';
import { type BenchOptions, type LoadPoint, loadPoints, validateOptions } from './options.ts';
import { createProgress } from './progress.ts';
import { PromptSynthesizer, type TextTokenizer } from './prompts.ts';
import { BenchRandom } from './random.ts';
import type { RequestRecord } from './record.ts';
import { type BenchResult, type PointResult, RESULT_SCHEMA } from './result.ts';
import { gapSampler } from './schedule.ts';
import { defaultTokenizerDir, loadTextTokenizer } from './tokenizer.ts';
import { syntheticPool, Workload } from './workload.ts';

export interface BenchRun {
  result: BenchResult;
  /** Per point, its records (also written as JSONL by the artifacts step). */
  records: RequestRecord[][];
}

export interface BenchHooks {
  log?: (line: string) => void;
  /** Called after each point, e.g. to print it or save partial results. */
  onPoint?: (point: PointResult, records: RequestRecord[]) => void | Promise<void>;
}

const STREAM_MODELS = 1;
const STREAM_LENGTHS = 2;
const STREAM_ARRIVALS = 3;
const STREAM_PROMPTS = 4;
const WARMUP_SALT = 1000;

export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchRun> {
  validateOptions(options);
  const log = hooks.log ?? (() => {});
  const tokenizerDir = options.tokenizerDir ?? defaultTokenizerDir();
  const tokenizer = await loadTextTokenizer(tokenizerDir);
  const models = await resolveModels(options);
  log(`models: ${models.join(', ')}`);
  const seed = new BenchRandom(options.seed);
  const dataset = options.inputFile ? await loadDataset(options.inputFile, tokenizer) : null;
  const points = loadPoints(options, dataset?.length ?? null);
  const pool = dataset ?? makeSyntheticPool(options, points, tokenizer, seed.fork(STREAM_PROMPTS));

  const client = new BenchClient({
    endpoint: options,
    countTokens: (text) => tokenizer.count(text),
    requestTimeoutMs: options.requestTimeoutSeconds * 1000,
  });
  const result: BenchResult = {
    schema: RESULT_SCHEMA,
    tool: 'loraplex bench',
    createdAt: new Date().toISOString(),
    url: options.url,
    endpointType: options.endpointType,
    streaming: options.streaming,
    models,
    modelSelectionStrategy: options.modelSelectionStrategy,
    zipfAlpha: options.modelSelectionStrategy === 'zipf' ? options.zipfAlpha : null,
    arrivalPattern: options.requestRate ? options.arrivalPattern : null,
    inputTokens: dataset ? null : options.inputTokens,
    inputLengthSource: options.useServerTokenCount ? 'usage' : 'tokenizer',
    outputTokens: options.outputTokens,
    inputFile: options.inputFile,
    tokenizer: tokenizerDir,
    goodput: options.goodput.length > 0 ? options.goodput.map((s) => `${s.metric}:${s.threshold}`).join(' ') : null,
    seed: options.seed,
    points: [],
  };
  const allRecords: RequestRecord[][] = [];
  try {
    for (const point of points) {
      const workload = (salt: number) =>
        new Workload(
          pool,
          createModelSelector(
            options.modelSelectionStrategy,
            models,
            seed.fork(STREAM_MODELS + salt),
            options.zipfAlpha,
          ),
          options.outputTokens,
          seed.fork(STREAM_LENGTHS + salt),
        );
      if (options.warmupRequestCount > 0) {
        log(`${point.label}: ${options.warmupRequestCount} warm-up request(s)`);
        const warm = workload(WARMUP_SALT);
        await runLoad(
          {
            concurrency: point.concurrency ?? 1,
            arrivals: null,
            requestCount: options.warmupRequestCount,
            durationSeconds: null,
            gracePeriodSeconds: 0,
          },
          () => warm.request(),
          (spec, index, signal) => client.send(spec, index, signal),
        );
      }
      const startedAt = new Date().toISOString();
      const records = await runPoint(options, point, workload(0), client, seed);
      const { overall, perModel } = summarizeByModel(records, {
        streaming: options.streaming,
        serverInputTokens: options.useServerTokenCount,
        slos: options.goodput,
      });
      const pointResult: PointResult = {
        label: point.label,
        concurrency: point.concurrency,
        requestRate: point.requestRate,
        requestCount: point.requestCount,
        durationSeconds: options.durationSeconds,
        warmupRequestCount: options.warmupRequestCount,
        startedAt,
        overall,
        perModel,
        recordsFile: null,
      };
      result.points.push(pointResult);
      allRecords.push(records);
      await hooks.onPoint?.(pointResult, records);
    }
  } finally {
    client.close();
  }
  return { result, records: allRecords };
}

async function runPoint(
  options: BenchOptions,
  point: LoadPoint,
  workload: Workload,
  client: BenchClient,
  seed: BenchRandom,
): Promise<RequestRecord[]> {
  const progress = createProgress(options.progress, {
    label: point.label,
    requestCount: point.requestCount,
    durationSeconds: options.durationSeconds,
  });
  try {
    return await runLoad(
      {
        concurrency: point.concurrency,
        arrivals:
          point.requestRate === null
            ? null
            : gapSampler(options.arrivalPattern, point.requestRate, seed.fork(STREAM_ARRIVALS)),
        requestCount: point.requestCount,
        durationSeconds: options.durationSeconds,
        gracePeriodSeconds: options.gracePeriodSeconds,
      },
      () => workload.request(),
      (spec, index, signal) => client.send(spec, index, signal),
      { onDone: (record) => progress.done(record) },
    );
  } finally {
    progress.stop();
  }
}

/** Enough distinct prompts for the run (up to --num-dataset-entries), made before any request is sent. */
function makeSyntheticPool(
  options: BenchOptions,
  points: LoadPoint[],
  tokenizer: TextTokenizer,
  rng: BenchRandom,
): DatasetEntry[] {
  const counts = points.map((p) => p.requestCount);
  const needed = counts.some((c) => c === null)
    ? options.numDatasetEntries
    : Math.max(options.warmupRequestCount, ...(counts as number[]));
  const size = Math.max(1, Math.min(options.numDatasetEntries, needed));
  return syntheticPool(new PromptSynthesizer(tokenizer, rng), options.inputTokens, size);
}
