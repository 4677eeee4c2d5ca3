/**
 * The charts of a result: throughput, TTFT and ITL percentiles across the sweep's load points, and per
 * point, per-adapter bars. Returns file names and SVG texts; the caller writes them.
 */
import type { MetricsSummary, RecordMetric } from '../metrics.ts';
import type { BenchResult, PointResult } from '../result.ts';
import type { StatKey } from '../stats.ts';
import { barChart } from './bar-chart.ts';
import { lineChart } from './line-chart.ts';

export interface ChartFile {
  name: string;
  svg: string;
}

const PERCENTILE_SERIES: StatKey[] = ['p50', 'p90', 'p99'];

function loadAxis(result: BenchResult): { label: string; categories: string[] } {
  const byRate = result.points.some((p) => p.requestRate !== null);
  return {
    label: byRate ? 'request rate (requests/s)' : 'concurrency (requests in flight)',
    categories: result.points.map((p) => String(byRate ? p.requestRate : p.concurrency)),
  };
}

/** 'concurrency=4' → 'c4', 'rate=2.5' → 'r2.5': short, file-name safe. */
export function pointSlug(point: PointResult): string {
  return point.requestRate !== null ? `r${point.requestRate}` : `c${point.concurrency}`;
}

function stat(m: MetricsSummary, metric: RecordMetric, key: StatKey): number | null {
  return m.stats[metric]?.[key] ?? null;
}

export function benchCharts(result: BenchResult): ChartFile[] {
  const axis = loadAxis(result);
  const files: ChartFile[] = [
    {
      name: 'throughput.svg',
      svg: lineChart({
        title: 'Output token throughput',
        xLabel: axis.label,
        yLabel: 'output tokens/s',
        categories: axis.categories,
        series: [{ name: 'output tokens/s', values: result.points.map((p) => p.overall.output_token_throughput) }],
      }),
    },
  ];
  const percentiles = (metric: RecordMetric, title: string, file: string, yLabel: string) => {
    if (!result.points.some((p) => p.overall.stats[metric])) return;
    files.push({
      name: file,
      svg: lineChart({
        title,
        xLabel: axis.label,
        yLabel,
        categories: axis.categories,
        series: PERCENTILE_SERIES.map((k) => ({
          name: k,
          values: result.points.map((p) => stat(p.overall, metric, k)),
        })),
      }),
    });
  };
  percentiles('time_to_first_token', 'Time to first token', 'ttft.svg', 'time to first token (ms)');
  percentiles('inter_token_latency', 'Inter-token latency', 'itl.svg', 'inter-token latency (ms)');
  percentiles('request_latency', 'Request latency', 'request-latency.svg', 'request latency (ms)');

  for (const point of result.points) {
    const models = Object.keys(point.perModel);
    if (models.length < 2) continue;
    const slug = pointSlug(point);
    const per = (metric: RecordMetric, k: StatKey) => models.map((m) => stat(point.perModel[m], metric, k));
    const latencyMetric: RecordMetric = point.overall.stats.time_to_first_token
      ? 'time_to_first_token'
      : 'request_latency';
    const latencyName = latencyMetric === 'time_to_first_token' ? 'Time to first token' : 'Request latency';
    files.push({
      name: `adapters-latency-${slug}.svg`,
      svg: barChart({
        title: `${latencyName} per model (${point.label})`,
        xLabel: 'model',
        yLabel: `${latencyName.toLowerCase()} (ms)`,
        categories: models,
        series: PERCENTILE_SERIES.map((k) => ({ name: k, values: per(latencyMetric, k) })),
      }),
    });
    if (point.overall.stats.inter_token_latency) {
      files.push({
        name: `adapters-itl-${slug}.svg`,
        svg: barChart({
          title: `Inter-token latency per model (${point.label})`,
          xLabel: 'model',
          yLabel: 'inter-token latency (ms)',
          categories: models,
          series: PERCENTILE_SERIES.map((k) => ({ name: k, values: per('inter_token_latency', k) })),
        }),
      });
    }
    files.push({
      name: `adapters-throughput-${slug}.svg`,
      svg: barChart({
        title: `Output token throughput per model (${point.label})`,
        xLabel: 'model',
        yLabel: 'output tokens/s',
        categories: models,
        series: [{ name: 'output tokens/s', values: models.map((m) => point.perModel[m].output_token_throughput) }],
      }),
    });
  }
  return files;
}
