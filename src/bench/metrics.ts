/**
 * The metrics, defined as NVIDIA AIPerf (and GenAI-Perf before it) defines them:
 *   time_to_first_token   = first content response − request start               (streaming only)
 *   request_latency       = last content response − request start
 *   inter_token_latency   = (request_latency − TTFT) / (output_sequence_length − 1)   (OSL ≥ 2, streaming)
 *   output_token_throughput_per_user = 1 / inter_token_latency (tokens/s)
 *   output_sequence_length = completion tokens; input_sequence_length = prompt tokens by the tokenizer
 *   benchmark_duration    = last response end − first request start (over valid requests)
 *   output_token_throughput = Σ output_sequence_length / benchmark_duration
 *   request_throughput    = valid request count / benchmark_duration
 *   goodput               = requests meeting every SLO / benchmark_duration
 * Errored requests are counted apart and left out of every distribution.
 */
import { type GoodputSlo, meetsSlos } from './goodput.ts';
import { RECORD_METRICS, type RecordMetric, type RecordValues } from './metric-names.ts';
import { isValid, type RequestRecord } from './record.ts';
import { type Stats, summarize } from './stats.ts';

export { METRIC_UNITS, RECORD_METRICS, type RecordMetric, type RecordValues } from './metric-names.ts';

/**
 * One request's metrics; a metric that does not apply (TTFT without streaming, ITL of one token) is absent.
 * `serverInputTokens`: the input length is usage.prompt_tokens (chat template included), as AIPerf's
 * --use-server-token-count makes it.
 */
export function recordMetrics(r: RequestRecord, streaming: boolean, serverInputTokens = false): RecordValues {
  const out: RecordValues = {
    input_sequence_length: serverInputTokens && r.usage ? r.usage.promptTokens : r.inputTokens,
  };
  if (r.lastContentMs !== null) out.request_latency = r.lastContentMs - r.startMs;
  if (r.outputTokens !== null) out.output_sequence_length = r.outputTokens;
  if (streaming && r.firstContentMs !== null) {
    const ttft = r.firstContentMs - r.startMs;
    out.time_to_first_token = ttft;
    const osl = r.outputTokens;
    if (osl !== null && osl >= 2 && out.request_latency !== undefined) {
      const itl = (out.request_latency - ttft) / (osl - 1);
      out.inter_token_latency = itl;
      if (itl > 0) out.output_token_throughput_per_user = 1000 / itl;
    }
  }
  return out;
}

export interface ErrorSummary {
  kind: string;
  status?: number;
  count: number;
  /** The first message seen of this kind. */
  example: string;
}

export interface OutputLengthMismatch {
  /** Valid requests whose output length differs from the max_tokens they asked for. */
  count: number;
  /** Mean of (real − asked) over the mismatching requests. */
  meanDifference: number;
  examples: { model: string; requested: number; actual: number }[];
}

export interface MetricsSummary {
  request_count: number;
  error_request_count: number;
  /** Seconds. */
  benchmark_duration: number;
  request_throughput: number;
  output_token_throughput: number;
  total_output_tokens: number;
  total_input_tokens: number;
  good_request_count: number | null;
  goodput: number | null;
  /** Output lengths that came from tokenizing the text, because the server sent no usage. */
  output_tokens_from_tokenizer: number;
  stats: Record<RecordMetric, Stats | null>;
  errors: ErrorSummary[];
  output_length_mismatch: OutputLengthMismatch;
}

export interface SummarizeOptions {
  streaming: boolean;
  /** Input lengths from usage.prompt_tokens instead of the tokenizer's count of the prompt. */
  serverInputTokens?: boolean;
  slos?: GoodputSlo[];
  /** Divide throughputs by this duration instead of the records' own (per-adapter shares of one run). */
  durationSeconds?: number;
}

/** Seconds between the first valid request's start and the last valid response's end. */
export function benchmarkDuration(records: readonly RequestRecord[]): number {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    if (!isValid(r)) continue;
    first = Math.min(first, r.startMs);
    last = Math.max(last, r.lastContentMs as number);
  }
  return last > first ? (last - first) / 1000 : 0;
}

export function summarizeRecords(records: readonly RequestRecord[], options: SummarizeOptions): MetricsSummary {
  const valid = records.filter(isValid);
  const perRecord = valid.map((r) => recordMetrics(r, options.streaming, options.serverInputTokens));
  const duration = options.durationSeconds ?? benchmarkDuration(records);
  const perSecond = (n: number) => (duration > 0 ? n / duration : 0);
  const column = (m: RecordMetric) => perRecord.map((v) => v[m]).filter((v): v is number => v !== undefined);
  const stats = Object.fromEntries(RECORD_METRICS.map((m) => [m, summarize(column(m))])) as Record<
    RecordMetric,
    Stats | null
  >;
  const totalOutput = column('output_sequence_length').reduce((a, b) => a + b, 0);
  const totalInput = column('input_sequence_length').reduce((a, b) => a + b, 0);
  const slos = options.slos ?? [];
  const good = slos.length > 0 ? perRecord.filter((v) => meetsSlos(v, slos)).length : null;
  return {
    request_count: valid.length,
    error_request_count: records.length - valid.length,
    benchmark_duration: duration,
    request_throughput: perSecond(valid.length),
    output_token_throughput: perSecond(totalOutput),
    total_output_tokens: totalOutput,
    total_input_tokens: totalInput,
    good_request_count: good,
    goodput: good === null ? null : perSecond(good),
    output_tokens_from_tokenizer: valid.filter((r) => r.outputTokensSource === 'tokenizer').length,
    stats,
    errors: summarizeErrors(records),
    output_length_mismatch: outputLengthMismatch(valid),
  };
}

export function summarizeErrors(records: readonly RequestRecord[]): ErrorSummary[] {
  const groups = new Map<string, ErrorSummary>();
  for (const r of records) {
    if (isValid(r)) continue;
    const error = r.error ?? { kind: 'empty' as const, message: 'the response carried no content' };
    const key = `${error.kind}:${error.status ?? ''}`;
    const group = groups.get(key);
    if (group) group.count++;
    else groups.set(key, { kind: error.kind, status: error.status, count: 1, example: error.message.slice(0, 300) });
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

function outputLengthMismatch(valid: readonly RequestRecord[]): OutputLengthMismatch {
  const off = valid.filter(
    (r) => r.requestedOutputTokens !== null && r.outputTokens !== null && r.outputTokens !== r.requestedOutputTokens,
  );
  const diff = off.reduce((a, r) => a + (r.outputTokens as number) - (r.requestedOutputTokens as number), 0);
  return {
    count: off.length,
    meanDifference: off.length > 0 ? diff / off.length : 0,
    examples: off.slice(0, 5).map((r) => ({
      model: r.model,
      requested: r.requestedOutputTokens as number,
      actual: r.outputTokens as number,
    })),
  };
}

/** Overall metrics and one entry per model; per-model throughputs are shares of the whole run's duration. */
export function summarizeByModel(
  records: readonly RequestRecord[],
  options: SummarizeOptions,
): { overall: MetricsSummary; perModel: Record<string, MetricsSummary> } {
  const overall = summarizeRecords(records, options);
  const models = [...new Set(records.map((r) => r.model))].sort();
  const perModel: Record<string, MetricsSummary> = {};
  for (const m of models) {
    perModel[m] = summarizeRecords(
      records.filter((r) => r.model === m),
      { ...options, durationSeconds: overall.benchmark_duration },
    );
  }
  return { overall, perModel };
}
