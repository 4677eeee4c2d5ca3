/** The comparison as markdown tables and SVG bar charts (the figures in docs/ are these, unedited). */
import { barChart } from '../../src/bench/charts/bar-chart.ts';
import type { Comparison } from './paired.ts';

const num = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(2));

/** One row per metric: both medians, the ratio of medians, the per-pair ratios' min..max, the verdict. */
export function comparisonTable(rows: Comparison[], a: string, b: string): string[] {
  return [
    `| metric | ${a} (median) | ${b} (median) | ${b} / ${a} | per-pair ratios min..max | verdict |`,
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.metric} | ${num(r.medianA)} | ${num(r.medianB)} | **${r.ratio.toFixed(3)}** | ` +
        `${r.min.toFixed(3)}..${r.max.toFixed(3)} | ${r.verdict}${r.better === 'lower' ? ' (lower is better)' : ''} |`,
    ),
  ];
}

/** Output tok/s of each workload, the two variants side by side (medians). */
export function throughputChart(title: string, rows: Comparison[], a: string, b: string): string {
  const tput = rows.filter((r) => r.metric.endsWith('output tok/s'));
  return barChart({
    title,
    xLabel: 'workload',
    yLabel: 'output tokens/s (median)',
    categories: tput.map((r) => r.metric.replace(/ · output tok\/s$/, '')),
    series: [
      { name: a, values: tput.map((r) => r.medianA) },
      { name: b, values: tput.map((r) => r.medianB) },
    ],
  });
}
