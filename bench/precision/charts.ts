/** Two bar charts from the artifact: worst |Δlogit| per setting, and decode tokens/s relative to f32/f32. */
import { barChart } from '../../src/bench/charts/bar-chart.ts';
import type { ChartFile } from '../../src/bench/charts/bench-charts.ts';
import { DEFAULT_FRAME } from '../../src/bench/charts/svg.ts';
import { DOT_PATH_NAME, dotPathOf, type PrecisionArtifact, settingLabel, summarize } from './summary.ts';

/** Room for twelve setting labels side by side (ten, and model-bf16 with each --bf16-dot path). */
const WIDE = { ...DEFAULT_FRAME, width: 1500 };

function category(r: PrecisionArtifact['accuracy'][number]): string {
  const dot = dotPathOf(r);
  return `${r.model}·${r.loraDtype}·${r.kvCacheDtype}${dot === 'off' ? '' : `·${DOT_PATH_NAME[dot]}`}`;
}

export function precisionCharts(a: PrecisionArtifact): ChartFile[] {
  const runs = a.accuracy;
  return [
    {
      name: 'precision-logits.svg',
      svg: barChart(
        {
          title: `SmolLM2-135M: worst |Δ| of last-position logits (${runs[0]?.cases.length ?? 0} oracle cases)`,
          xLabel:
            'model · slots · KV [· bf16 dot] (f32 model vs PEFT; bf16 model vs its f32-slot, f32-KV, dot-off run)',
          yLabel: 'max |Δlogit|',
          categories: runs.map(category),
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
