/**
 * `loraplex bench`: load-test any OpenAI-compatible server (loraplex, vLLM, NIM, llama.cpp, ...) the way
 * GenAI-Perf/AIPerf do, with LoRA adapters as models; `loraplex bench compare A.json B.json`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseSelectionStrategy, SELECTION_STRATEGIES } from '../bench/adapter-selection.ts';
import { writeArtifacts } from '../bench/artifacts.ts';
import {
  type ComparableRun,
  loadComparable,
  renderComparison,
  rowsBeyondTolerance,
  type Tolerance,
} from '../bench/compare.ts';
import { ENDPOINT_TYPES, type EndpointType } from '../bench/endpoint.ts';
import { parseGoodput } from '../bench/goodput.ts';
import {
  type BenchOptions,
  DEFAULT_OPTIONS,
  type ProgressMode,
  parseExtraInputs,
  parseNumberList,
} from '../bench/options.ts';
import { renderPoint, sweepTable } from '../bench/report.ts';
import { runBench } from '../bench/run-bench.ts';
import { ARRIVAL_PATTERNS, type ArrivalPattern } from '../bench/schedule.ts';
import { envOption, floatArg, intArg } from './options.ts';

export interface BenchFlags {
  url: string;
  model?: string;
  numAdapters?: number;
  modelSelectionStrategy: string;
  zipfAlpha: number;
  endpointType: EndpointType;
  endpoint?: string;
  streaming: boolean;
  concurrency?: string;
  requestRate?: string;
  arrivalPattern: ArrivalPattern;
  requestCount?: number;
  duration?: number;
  benchmarkGracePeriod: number;
  warmupRequestCount: number;
  inputTokens: number;
  inputTokensStddev: number;
  outputTokens: number;
  outputTokensStddev: number;
  fixOutputLength: boolean;
  useServerTokenCount: boolean;
  numDatasetEntries: number;
  inputFile?: string;
  tokenizer?: string;
  apiKey?: string;
  extraInputs: string[];
  goodput?: string;
  seed: number;
  artifactDir: string;
  requestTimeoutSeconds: number;
  progress: ProgressMode;
}

const AIMING = `
Aiming at a server (--url is the server root, http://HOST:PORT; the /v1/... path is added):
  loraplex   loraplex serve --port 8000
             loraplex bench --url http://127.0.0.1:8000 --num-adapters 4
  vLLM       vllm serve BASE --enable-lora --lora-modules sql=/loras/sql chat=/loras/chat
             loraplex bench --url http://127.0.0.1:8000 --model sql,chat   (or --num-adapters 2)
  NIM        a NIM for LLMs with NIM_PEFT_SOURCE=/loras, published on port 8000
             loraplex bench --url http://127.0.0.1:8000 --num-adapters N   (names as GET /v1/models lists them)
  llama.cpp  llama-server -m base.gguf --lora a.gguf --port 8080
             loraplex bench --url http://127.0.0.1:8080 --model <id from /v1/models> \\
               --extra-inputs '{"lora":[{"id":0,"scale":1}]}'   (llama.cpp picks adapters by id, not by model)
  A server that rejects min_tokens/ignore_eos: --no-fix-output-length (lengths then vary; the report says so).
  --endpoint-type chat posts messages to /v1/chat/completions (the server applies the chat template);
  completions posts raw text to /v1/completions.

Examples:
  loraplex bench --url http://127.0.0.1:8000 --num-adapters 4 --concurrency 1,2,4,8 \\
    --input-tokens 256 --output-tokens 64 --request-count 64 --warmup-request-count 8
  loraplex bench --model a,b,c,d --model-selection-strategy zipf --zipf-alpha 1.2 --request-rate 2,4,8 --duration 60
  loraplex bench compare artifacts/before/bench.json artifacts/after/bench.json
`;

function list(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function names(value: string): string {
  if (value.split(',').some((n) => n.trim() === '')) throw new InvalidArgumentError(`expected a,b,c, got '${value}'`);
  return value;
}

/** What runBench takes: every bench flag lands here. */
export function toOptions(flags: BenchFlags): BenchOptions {
  const outputTokens = flags.outputTokens === 0 ? null : { mean: flags.outputTokens, stddev: flags.outputTokensStddev };
  return {
    ...DEFAULT_OPTIONS,
    url: flags.url,
    endpointType: flags.endpointType,
    endpointPath: flags.endpoint ?? null,
    apiKey: flags.apiKey ?? null,
    streaming: flags.streaming,
    fixOutputLength: flags.fixOutputLength,
    useServerTokenCount: flags.useServerTokenCount ?? false,
    extraInputs: parseExtraInputs(flags.extraInputs),
    models: flags.model ? flags.model.split(',').map((n) => n.trim()) : null,
    numAdapters: flags.numAdapters ?? null,
    modelSelectionStrategy: parseSelectionStrategy(flags.modelSelectionStrategy),
    zipfAlpha: flags.zipfAlpha,
    concurrency: flags.concurrency
      ? parseNumberList(flags.concurrency, '--concurrency', { integer: true, min: 1 })
      : null,
    requestRate: flags.requestRate
      ? parseNumberList(flags.requestRate, '--request-rate', { integer: false, min: Number.MIN_VALUE })
      : null,
    arrivalPattern: flags.arrivalPattern,
    requestCount: flags.requestCount ?? null,
    durationSeconds: flags.duration ?? null,
    warmupRequestCount: flags.warmupRequestCount,
    gracePeriodSeconds: flags.benchmarkGracePeriod,
    requestTimeoutSeconds: flags.requestTimeoutSeconds,
    inputTokens: { mean: flags.inputTokens, stddev: flags.inputTokensStddev },
    outputTokens,
    numDatasetEntries: flags.numDatasetEntries,
    inputFile: flags.inputFile ?? null,
    tokenizerDir: flags.tokenizer ?? null,
    goodput: flags.goodput ? parseGoodput(flags.goodput) : [],
    seed: flags.seed,
    artifactDir: flags.artifactDir,
    progress: flags.progress,
  };
}

function compareCommand(): Command {
  return new Command('compare')
    .description('compare two results side by side (ours: bench.json; or AIPerf: profile_export_aiperf.json)')
    .argument('<a>', 'baseline result file')
    .argument('<b>', 'result file compared with the baseline')
    .addOption(new Option('--tolerance <percent>', 'mark rows whose difference exceeds this').argParser(floatArg(0)))
    .addOption(
      new Option('--tail-tolerance <percent>', 'the tolerance for p99 rows (default: --tolerance)').argParser(
        floatArg(0),
      ),
    )
    .option('--fail-over-tolerance', 'exit 1 when a row differs by more than --tolerance (CI checks)')
    .action(async (a: string, b: string, flags: CompareFlags) => {
      const [runA, runB] = await Promise.all([loadComparable(a), loadComparable(b)]);
      const outcome = compareOutcome(runA, runB, flags);
      console.log(outcome.report);
      if (outcome.failures.length > 0) {
        console.error(`beyond the tolerance:\n  ${outcome.failures.join('\n  ')}`);
        process.exitCode = 1;
      }
    });
}

export interface CompareFlags {
  tolerance?: number;
  tailTolerance?: number;
  failOverTolerance?: boolean;
}

/**
 * The comparison's text and, under --fail-over-tolerance, the rows that fail it: beyond --tolerance (default
 * 5 %), or for p99 rows beyond --tail-tolerance (default: --tolerance).
 */
export function compareOutcome(a: ComparableRun, b: ComparableRun, flags: CompareFlags) {
  const percent = flags.tolerance ?? 5;
  const tolerance: Tolerance = { percent, tailPercent: flags.tailTolerance ?? percent };
  const unmarked = flags.tolerance === undefined && flags.tailTolerance === undefined;
  return {
    report: renderComparison(a, b, unmarked ? null : tolerance),
    tolerance,
    failures: flags.failOverTolerance ? rowsBeyondTolerance(a, b, tolerance) : [],
  };
}

export function benchCommand(): Command {
  const d = DEFAULT_OPTIONS;
  const cmd = new Command('bench')
    .description('load-test an OpenAI-compatible server, GenAI-Perf/AIPerf style, with LoRA adapters as models')
    .option('-u, --url <url>', 'server root (http://host:port)', d.url)
    .option('-m, --model <names>', 'models to send requests to, comma-separated', names)
    .addOption(new Option('--num-adapters <n>', 'use the first N adapters GET /v1/models lists').argParser(intArg(0)))
    .addOption(
      new Option(
        '--model-selection-strategy <strategy>',
        `how requests pick a model: ${SELECTION_STRATEGIES.join(' | ')}`,
      ).default(d.modelSelectionStrategy),
    )
    .addOption(
      new Option('--zipf-alpha <alpha>', 'skew of zipf selection (P(i) ∝ 1/i^α)')
        .argParser(floatArg(0))
        .default(d.zipfAlpha),
    )
    .addOption(new Option('--endpoint-type <type>', 'API to call').choices([...ENDPOINT_TYPES]).default(d.endpointType))
    .option('--custom-endpoint, --endpoint <path>', 'path instead of /v1/chat/completions or /v1/completions')
    .option('--streaming', 'stream responses (SSE); needed for TTFT and ITL', d.streaming)
    .option('--no-streaming', 'ask for whole responses')
    .option('--concurrency <n[,n...]>', 'requests in flight (closed loop); a list sweeps')
    .option('--request-rate <r[,r...]>', 'requests per second (open loop; --concurrency caps it); a list sweeps')
    .addOption(
      new Option('--request-rate-mode, --arrival-pattern <pattern>', 'arrivals at --request-rate')
        .choices([...ARRIVAL_PATTERNS])
        .default(d.arrivalPattern),
    )
    .addOption(
      new Option(
        '--num-requests, --request-count <n>',
        'requests per load point (default max(10, 2×concurrency))',
      ).argParser(intArg(1)),
    )
    .addOption(
      new Option('--benchmark-duration, --duration <seconds>', 'send for this long instead of a count').argParser(
        floatArg(0.001),
      ),
    )
    .addOption(
      new Option('--benchmark-grace-period <seconds>', 'after --duration, wait this long for running requests')
        .argParser(floatArg(0))
        .default(d.gracePeriodSeconds),
    )
    .addOption(
      new Option('--num-warmup-requests, --warmup-request-count <n>', 'requests sent first and not counted')
        .argParser(intArg(0))
        .default(d.warmupRequestCount),
    )
    .addOption(
      new Option('--synthetic-input-tokens-mean, --input-tokens <n>', 'prompt length in tokens (mean)')
        .argParser(intArg(1))
        .default(d.inputTokens.mean),
    )
    .addOption(
      new Option('--synthetic-input-tokens-stddev, --input-tokens-stddev <n>', 'prompt length stddev')
        .argParser(floatArg(0))
        .default(d.inputTokens.stddev),
    )
    .addOption(
      new Option('--output-tokens-mean, --output-tokens <n>', 'max_tokens (mean); 0: send none')
        .argParser(intArg(0))
        .default(d.outputTokens?.mean ?? 0),
    )
    .addOption(
      new Option('--output-tokens-stddev <n>', 'max_tokens stddev')
        .argParser(floatArg(0))
        .default(d.outputTokens?.stddev ?? 0),
    )
    .option('--no-fix-output-length', 'do not send min_tokens and ignore_eos (for servers that reject them)')
    .option('--use-server-token-count', "input lengths from the server's usage.prompt_tokens (template included)")
    .addOption(
      new Option('--num-dataset-entries <n>', 'distinct synthetic prompts')
        .argParser(intArg(1))
        .default(d.numDatasetEntries),
    )
    .option(
      '--input-file <jsonl>',
      'requests from a JSONL file: {"text"} or {"messages"}, optional "model", "max_tokens"',
    )
    .option('--tokenizer <dir>', 'Hugging Face tokenizer directory (default: Qwen2.5, shipped with loraplex)')
    .addOption(envOption('--api-key <key>', 'sent as Authorization: Bearer', 'API_KEY'))
    .option('--extra-inputs <key:value>', 'extra body field (or a JSON object), repeatable', list, [])
    .option('--goodput <slos>', "SLOs, e.g. 'time_to_first_token:200 inter_token_latency:50' (ms)")
    .addOption(
      new Option('--random-seed, --seed <n>', 'seed of prompts, lengths, picks, arrivals')
        .argParser(intArg(0))
        .default(d.seed),
    )
    .option('--output-artifact-dir, --artifact-dir <dir>', 'where bench.json, records and SVG charts go', d.artifactDir)
    .addOption(
      new Option('--request-timeout-seconds <s>', 'give up on a request after this long')
        .argParser(floatArg(0.001))
        .default(d.requestTimeoutSeconds),
    )
    .addOption(
      new Option('--progress <mode>', 'progress display').choices(['auto', 'bar', 'lines', 'off']).default(d.progress),
    )
    .addHelpText('after', AIMING);
  cmd.addCommand(compareCommand());
  return cmd.action(async (flags: BenchFlags) => {
    const options = toOptions(flags);
    const { result, records } = await runBench(options, {
      log: (line) => console.error(`loraplex bench: ${line}`),
      onPoint: (point) => console.log(`\n${renderPoint(point)}\n`),
    });
    if (result.points.length > 1) console.log(`${sweepTable(result)}\n`);
    const written = await writeArtifacts(options.artifactDir, result, records);
    console.log(`results: ${written[0]} (and ${written.length - 1} more files in ${options.artifactDir})`);
  });
}
