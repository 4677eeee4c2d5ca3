/** The console report: AIPerf-style metric table per load point, per-model table, errors, sweep summary. */
import { METRIC_UNITS, type MetricsSummary, RECORD_METRICS, type RecordMetric } from './metrics.ts';
import type { BenchResult, PointResult } from './result.ts';
import type { StatKey } from './stats.ts';
import { formatNumber, renderTable } from './table.ts';

export const METRIC_TITLES: Record<RecordMetric, string> = {
  time_to_first_token: 'Time to First Token',
  inter_token_latency: 'Inter Token Latency',
  request_latency: 'Request Latency',
  output_token_throughput_per_user: 'Output Token Throughput Per User',
  output_sequence_length: 'Output Sequence Length',
  input_sequence_length: 'Input Sequence Length',
};

const COLUMNS: StatKey[] = ['avg', 'min', 'max', 'p99', 'p90', 'p50', 'std'];

export function metricsTable(m: MetricsSummary): string {
  const rows: string[][] = [];
  for (const metric of RECORD_METRICS) {
    const s = m.stats[metric];
    if (!s) continue;
    rows.push([`${METRIC_TITLES[metric]} (${METRIC_UNITS[metric]})`, ...COLUMNS.map((c) => formatNumber(s[c]))]);
  }
  const scalar = (name: string, value: number | null) =>
    rows.push([name, formatNumber(value), ...COLUMNS.slice(1).map(() => '')]);
  scalar('Output Token Throughput (tokens/s)', m.output_token_throughput);
  scalar('Request Throughput (requests/s)', m.request_throughput);
  if (m.goodput !== null) scalar('Goodput (requests/s)', m.goodput);
  scalar('Request Count (requests)', m.request_count);
  scalar('Error Count (requests)', m.error_request_count);
  scalar('Benchmark Duration (s)', m.benchmark_duration);
  return renderTable(['Metric', ...COLUMNS], rows);
}

export function perModelTable(perModel: Record<string, MetricsSummary>): string {
  const p = (m: MetricsSummary, metric: RecordMetric, stat: StatKey) => formatNumber(m.stats[metric]?.[stat]);
  const rows = Object.entries(perModel).map(([model, m]) => [
    model,
    String(m.request_count),
    String(m.error_request_count),
    p(m, 'time_to_first_token', 'p50'),
    p(m, 'time_to_first_token', 'p99'),
    p(m, 'inter_token_latency', 'p50'),
    p(m, 'inter_token_latency', 'p99'),
    p(m, 'request_latency', 'p50'),
    p(m, 'output_sequence_length', 'avg'),
    formatNumber(m.output_token_throughput),
  ]);
  return renderTable(
    [
      'Model',
      'Requests',
      'Errors',
      'TTFT p50',
      'TTFT p99',
      'ITL p50',
      'ITL p99',
      'Latency p50',
      'OSL avg',
      'Out tok/s',
    ],
    rows,
  );
}

function problems(m: MetricsSummary): string[] {
  const lines: string[] = [];
  for (const e of m.errors) {
    lines.push(`errors: ${e.count} × ${e.kind}${e.status ? ` ${e.status}` : ''}: ${e.example}`);
  }
  const mismatch = m.output_length_mismatch;
  if (mismatch.count > 0) {
    const ex = mismatch.examples.map((x) => `${x.model} asked ${x.requested} got ${x.actual}`).join('; ');
    lines.push(
      `warning: ${mismatch.count} of ${m.request_count} answers differ from the asked length ` +
        `(mean ${formatNumber(mismatch.meanDifference)} tokens; e.g. ${ex}); ` +
        'the server may ignore min_tokens/ignore_eos (try --extra-inputs, or --no-fix-output-length)',
    );
  }
  if (m.output_tokens_from_tokenizer > 0) {
    lines.push(
      `note: ${m.output_tokens_from_tokenizer} answer(s) came without usage; their length is the tokenizer's count`,
    );
  }
  return lines;
}

export function renderPoint(point: PointResult): string {
  const m = point.overall;
  const title = `${point.label}: ${m.request_count} requests, ${m.error_request_count} errors, ${formatNumber(m.benchmark_duration)} s`;
  const parts = [title, metricsTable(m)];
  if (Object.keys(point.perModel).length > 1) parts.push(perModelTable(point.perModel));
  parts.push(...problems(m));
  return parts.join('\n\n');
}

export function sweepTable(result: BenchResult): string {
  const rows = result.points.map((pt) => {
    const m = pt.overall;
    const s = (metric: RecordMetric, stat: StatKey) => formatNumber(m.stats[metric]?.[stat]);
    return [
      pt.label,
      formatNumber(m.request_throughput),
      formatNumber(m.output_token_throughput),
      s('time_to_first_token', 'p50'),
      s('time_to_first_token', 'p99'),
      s('inter_token_latency', 'p50'),
      s('inter_token_latency', 'p99'),
      s('request_latency', 'p50'),
      String(m.error_request_count),
    ];
  });
  return renderTable(
    ['Load', 'Req/s', 'Out tok/s', 'TTFT p50', 'TTFT p99', 'ITL p50', 'ITL p99', 'Latency p50', 'Errors'],
    rows,
  );
}
