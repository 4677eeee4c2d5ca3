/**
 * `loraplex bench compare A.json B.json`: two results (ours, or AIPerf's profile_export_aiperf.json) side
 * by side, point by point, with B/A and the relative difference.
 */
import { readFile } from 'node:fs/promises';
import { aiperfLabel, isAiperfExport, summaryFromAiperf } from './aiperf-import.ts';
import type { MetricsSummary, RecordMetric } from './metrics.ts';
import { type BenchResult, RESULT_SCHEMA } from './result.ts';
import type { StatKey } from './stats.ts';
import { formatNumber, renderTable } from './table.ts';

export interface ComparableRun {
  source: string;
  /** 'loraplex bench' or 'aiperf 0.13.0'. */
  tool: string;
  points: { label: string; overall: MetricsSummary }[];
}

export interface CompareRow {
  metric: string;
  a: number | null;
  b: number | null;
  /** b / a */
  ratio: number | null;
  /** (b − a) / a × 100 */
  diffPercent: number | null;
  /** A tail percentile (p99): one or two requests of a short run decide it, so it gets its own tolerance. */
  tail: boolean;
}

type Pick = { name: string; get: (m: MetricsSummary) => number | null; tail?: boolean };

const stat = (metric: RecordMetric, key: StatKey, name: string): Pick => ({
  name: `${name} ${key}`,
  get: (m) => m.stats[metric]?.[key] ?? null,
  tail: key === 'p99',
});

/** How far B may be from A, in percent: every row, and the tail rows (p99) when they get more room. */
export interface Tolerance {
  percent: number;
  tailPercent?: number;
}

const allowed = (row: CompareRow, t: Tolerance) => (row.tail ? (t.tailPercent ?? t.percent) : t.percent);
const within = (row: CompareRow, t: Tolerance) =>
  row.diffPercent === null || Math.abs(row.diffPercent) <= allowed(row, t);

export const COMPARED: Pick[] = [
  ...(['avg', 'p50', 'p90', 'p99'] as StatKey[]).map((k) => stat('time_to_first_token', k, 'TTFT (ms)')),
  ...(['avg', 'p50', 'p90', 'p99'] as StatKey[]).map((k) => stat('inter_token_latency', k, 'ITL (ms)')),
  ...(['avg', 'p50', 'p90', 'p99'] as StatKey[]).map((k) => stat('request_latency', k, 'Request latency (ms)')),
  stat('output_token_throughput_per_user', 'avg', 'Output tokens/s/user'),
  stat('output_sequence_length', 'avg', 'Output sequence length'),
  stat('input_sequence_length', 'avg', 'Input sequence length'),
  { name: 'Output token throughput (tokens/s)', get: (m) => m.output_token_throughput },
  { name: 'Request throughput (requests/s)', get: (m) => m.request_throughput },
  { name: 'Request count', get: (m) => m.request_count },
  { name: 'Error count', get: (m) => m.error_request_count },
];

export function compareSummaries(a: MetricsSummary, b: MetricsSummary, picks: Pick[] = COMPARED): CompareRow[] {
  return picks.map((p) => {
    const va = p.get(a);
    const vb = p.get(b);
    const both = va !== null && vb !== null && Number.isFinite(va) && Number.isFinite(vb);
    return {
      metric: p.name,
      a: va,
      b: vb,
      ratio: both && va !== 0 ? (vb as number) / (va as number) : null,
      diffPercent: both && va !== 0 ? (((vb as number) - (va as number)) / (va as number)) * 100 : null,
      tail: p.tail ?? false,
    };
  });
}

export function comparableFrom(json: unknown, source: string): ComparableRun {
  if (isAiperfExport(json)) {
    return {
      source,
      tool: `aiperf ${json.aiperf_version}`,
      points: [{ label: aiperfLabel(json), overall: summaryFromAiperf(json) }],
    };
  }
  const result = json as BenchResult;
  if (result?.schema !== RESULT_SCHEMA) {
    throw new Error(`${source}: neither a loraplex bench result (${RESULT_SCHEMA}) nor an AIPerf JSON export`);
  }
  return { source, tool: result.tool, points: result.points.map((p) => ({ label: p.label, overall: p.overall })) };
}

export async function loadComparable(path: string): Promise<ComparableRun> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  return comparableFrom(json, path);
}

/** Points pair up by label when both sides have it, else by position. */
export function pairPoints(a: ComparableRun, b: ComparableRun): [number, number][] {
  const pairs: [number, number][] = [];
  a.points.forEach((pa, i) => {
    const j = b.points.findIndex((pb) => pb.label === pa.label);
    if (j >= 0) pairs.push([i, j]);
  });
  if (pairs.length > 0) return pairs;
  return Array.from({ length: Math.min(a.points.length, b.points.length) }, (_, i) => [i, i] as [number, number]);
}

/** The compared rows whose relative difference exceeds the tolerance, as "point: metric +x%" lines. */
export function rowsBeyondTolerance(a: ComparableRun, b: ComparableRun, tolerance: Tolerance): string[] {
  const out: string[] = [];
  for (const [i, j] of pairPoints(a, b)) {
    for (const r of compareSummaries(a.points[i].overall, b.points[j].overall)) {
      if (!within(r, tolerance)) {
        out.push(
          `${a.points[i].label}: ${r.metric} ${signed(r.diffPercent as number)} (limit ${allowed(r, tolerance)}%)`,
        );
      }
    }
  }
  return out;
}

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)}%`;

export function renderComparison(a: ComparableRun, b: ComparableRun, tolerance: Tolerance | null = null): string {
  const blocks: string[] = [`A: ${a.source} (${a.tool})\nB: ${b.source} (${b.tool})`];
  for (const [i, j] of pairPoints(a, b)) {
    const rows = compareSummaries(a.points[i].overall, b.points[j].overall);
    const label =
      a.points[i].label === b.points[j].label ? a.points[i].label : `${a.points[i].label} vs ${b.points[j].label}`;
    const table = renderTable(
      ['Metric', 'A', 'B', 'B/A', 'B vs A', ...(tolerance === null ? [] : ['within'])],
      rows.map((r) => [
        r.metric,
        formatNumber(r.a),
        formatNumber(r.b),
        r.ratio === null ? 'n/a' : r.ratio.toFixed(3),
        r.diffPercent === null ? 'n/a' : signed(r.diffPercent),
        ...(tolerance === null ? [] : [r.diffPercent === null ? '' : within(r, tolerance) ? 'yes' : 'NO']),
      ]),
    );
    blocks.push(`${label}\n${table}`);
  }
  if (a.points.length !== b.points.length) {
    blocks.push(
      `note: A has ${a.points.length} load point(s), B has ${b.points.length}; unmatched points are not shown`,
    );
  }
  return blocks.join('\n\n');
}
