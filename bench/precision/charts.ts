/** Two bar charts from the artifact: worst |Δlogit| per setting, and decode tokens/s relative to f32/f32. */
import { barChart } from '../../src/bench/charts/bar-chart.ts';
import type { ChartFile } from '../../src/bench/charts/bench-charts.ts';
import { DEFAULT_FRAME } from '../../src/bench/charts/svg.ts';
import { type PrecisionArtifact, settingLabel, summarize } from './summary.ts';

/** Room for eight setting labels side by side. */
const WIDE = { ...DEFAULT_FRAME, width: 1040 };

export function precisionCharts(a: PrecisionArtifact): ChartFile[] {
  const runs = a.accuracy;
  return [
    {
      name: 'precision-logits.svg',
      svg: barChart(
        {
          title: 'SmolLM2-135M: worst |Δ| of last-position logits (16 oracle cases)',
          xLabel: 'model · slots · KV (f32 model vs PEFT; bf16 model vs its f32-slot, f32-KV run)',
          yLabel: 'max |Δlogit|',
          categories: runs.map((r) => `${r.model}·${r.loraDtype}·${r.kvCacheDtype}`),
          series: [{ name: 'worst over cases', values: runs.map((r) => summarize(r.cases).worst) }],
        },
        WIDE,
      ),
    },
    {
      name: 'precision-decode.svg',
      svg: barChart({
        title: 'SmolLM2-135M decode, 32 sequences × 32 adapters: tokens/s vs slots f32 · KV f32',
        xLabel: 'setting',
        yLabel: 'ratio (median of paired rounds)',
        categories: a.throughput.results.map((r) => settingLabel(r)),
        series: [{ name: 'decode tokens/s ratio', values: a.throughput.results.map((r) => r.ratio) }],
      }),
    },
  ];
}
