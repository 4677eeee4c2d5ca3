/**
 * Reads NVIDIA AIPerf's profile_export_aiperf.json (one run) into the same summary shape as ours, so
 * `loraplex bench compare` can put the two side by side. AIPerf stores each metric under its tag with its
 * unit and stats (ms for latencies); scalars keep only `avg`.
 */
import { type MetricsSummary, RECORD_METRICS, type RecordMetric } from './metrics.ts';
import type { Stats } from './stats.ts';

type AiperfMetric = Partial<Stats> & { unit?: string; avg?: number };
type AiperfExport = Record<string, unknown> & { aiperf_version?: string };

export function isAiperfExport(json: unknown): json is AiperfExport {
  return !!json && typeof json === 'object' && 'aiperf_version' in json;
}

function metric(json: AiperfExport, tag: string): AiperfMetric | null {
  const m = json[tag];
  return m && typeof m === 'object' ? (m as AiperfMetric) : null;
}

function scalar(json: AiperfExport, tag: string): number | null {
  return metric(json, tag)?.avg ?? null;
}

function stats(json: AiperfExport, tag: RecordMetric): Stats | null {
  const m = metric(json, tag);
  if (!m || m.avg === undefined) return null;
  const get = (k: keyof Stats) => (typeof m[k] === 'number' ? (m[k] as number) : Number.NaN);
  return {
    count: get('count'),
    avg: get('avg'),
    min: get('min'),
    max: get('max'),
    std: get('std'),
    p1: get('p1'),
    p5: get('p5'),
    p10: get('p10'),
    p25: get('p25'),
    p50: get('p50'),
    p75: get('p75'),
    p90: get('p90'),
    p95: get('p95'),
    p99: get('p99'),
  };
}

export function summaryFromAiperf(json: AiperfExport): MetricsSummary {
  const requests = scalar(json, 'request_count') ?? 0;
  const good = scalar(json, 'good_request_count');
  return {
    request_count: requests,
    error_request_count: scalar(json, 'error_request_count') ?? 0,
    benchmark_duration: scalar(json, 'benchmark_duration') ?? 0,
    request_throughput: scalar(json, 'request_throughput') ?? 0,
    output_token_throughput: scalar(json, 'output_token_throughput') ?? 0,
    total_output_tokens: scalar(json, 'total_osl') ?? scalar(json, 'total_output_tokens') ?? 0,
    total_input_tokens: scalar(json, 'total_isl') ?? 0,
    good_request_count: good,
    goodput: scalar(json, 'goodput'),
    output_tokens_from_tokenizer: 0,
    stats: Object.fromEntries(RECORD_METRICS.map((m) => [m, stats(json, m)])) as Record<RecordMetric, Stats | null>,
    errors: [],
    output_length_mismatch: { count: scalar(json, 'osl_mismatch_count') ?? 0, meanDifference: 0, examples: [] },
  };
}

/** 'concurrency=4' from the run's profiling phase, when AIPerf recorded it. */
export function aiperfLabel(json: AiperfExport): string {
  const phases = (json.input_config as { phases?: { kind?: string; concurrency?: number; rate?: number }[] })?.phases;
  const phase = phases?.find((p) => p.kind === 'profiling') ?? phases?.[0];
  if (phase?.rate !== undefined) return `rate=${phase.rate}`;
  if (phase?.concurrency !== undefined) return `concurrency=${phase.concurrency}`;
  return 'aiperf';
}
