/** A line chart over categorical x values (the sweep's load points), one line per series. */
import {
  DEFAULT_FRAME,
  escapeXml,
  FONT,
  type Frame,
  formatTick,
  legend,
  niceTicks,
  PALETTE,
  svgDocument,
  xCategoryAxis,
  yAxis,
} from './svg.ts';

export interface LineSeries {
  name: string;
  /** One value per x category; null leaves a gap. */
  values: (number | null)[];
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  categories: string[];
  series: LineSeries[];
}

export function lineChart(spec: LineChartSpec, frame: Frame = DEFAULT_FRAME): string {
  const all = spec.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const ticks = niceTicks(0, Math.max(...all, 0) * 1.05 || 1);
  const top = ticks[ticks.length - 1];
  const plotW = frame.width - frame.left - frame.right;
  const plotH = frame.height - frame.top - frame.bottom;
  const n = spec.categories.length;
  const x = (i: number) => frame.left + (n === 1 ? plotW / 2 : plotW * (0.04 + (0.92 * i) / (n - 1)));
  const y = (v: number) => frame.top + plotH * (1 - v / top);
  const body = [...yAxis(frame, ticks, y, spec.yLabel), ...xCategoryAxis(frame, spec.categories, x, spec.xLabel)];
  spec.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    const points = s.values
      .map((v, i) => (v === null || !Number.isFinite(v) ? null : { x: x(i), y: y(v), v }))
      .filter((p): p is { x: number; y: number; v: number } => p !== null);
    if (points.length > 1) {
      const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      body.push(`<path d='${d}' fill='none' stroke='${color}' stroke-width='2.5' stroke-linejoin='round'/>`);
    }
    for (const p of points) {
      body.push(
        `<circle cx='${p.x.toFixed(1)}' cy='${p.y.toFixed(1)}' r='4' fill='${color}' stroke='#ffffff' stroke-width='1.5'><title>${escapeXml(`${s.name}: ${formatTick(p.v)}`)}</title></circle>`,
      );
    }
  });
  if (spec.series.length === 1 && spec.categories.length <= 12) {
    // A single series: print its values above the points.
    spec.series[0].values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      body.push(
        `<text x='${x(i).toFixed(1)}' y='${(y(v) - 10).toFixed(1)}' text-anchor='middle' ${FONT} font-size='11' fill='#374151'>${formatTick(v)}</text>`,
      );
    });
  }
  body.push(
    ...legend(
      frame,
      spec.series.map((s) => s.name),
      'line',
    ),
  );
  return svgDocument(frame, spec.title, body);
}
