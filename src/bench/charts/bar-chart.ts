/** A grouped bar chart: one group per category (e.g. adapter), one bar per series (e.g. p50, p90, p99). */
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

export interface BarSeries {
  name: string;
  values: (number | null)[];
}

export interface BarChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  categories: string[];
  series: BarSeries[];
}

export function barChart(spec: BarChartSpec, frame: Frame = DEFAULT_FRAME): string {
  const all = spec.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const ticks = niceTicks(0, Math.max(...all, 0) * 1.08 || 1);
  const top = ticks[ticks.length - 1];
  const plotW = frame.width - frame.left - frame.right;
  const plotH = frame.height - frame.top - frame.bottom;
  const groupW = plotW / Math.max(1, spec.categories.length);
  const barW = Math.min(48, (groupW * 0.78) / Math.max(1, spec.series.length));
  const center = (i: number) => frame.left + groupW * (i + 0.5);
  const y = (v: number) => frame.top + plotH * (1 - v / top);
  const body = [...yAxis(frame, ticks, y, spec.yLabel), ...xCategoryAxis(frame, spec.categories, center, spec.xLabel)];
  const base = frame.height - frame.bottom;
  spec.categories.forEach((_, ci) => {
    const groupLeft = center(ci) - (barW * spec.series.length) / 2;
    spec.series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const bx = groupLeft + si * barW;
      const by = y(v);
      body.push(
        `<rect x='${(bx + 1).toFixed(1)}' y='${by.toFixed(1)}' width='${(barW - 2).toFixed(1)}' height='${(base - by).toFixed(1)}' rx='2' fill='${PALETTE[si % PALETTE.length]}'><title>${escapeXml(`${spec.categories[ci]} ${s.name}: ${formatTick(v)}`)}</title></rect>`,
      );
      if (barW >= 22) {
        body.push(
          `<text x='${(bx + barW / 2).toFixed(1)}' y='${(by - 5).toFixed(1)}' text-anchor='middle' ${FONT} font-size='10' fill='#374151'>${formatTick(v)}</text>`,
        );
      }
    });
  });
  body.push(
    ...legend(
      frame,
      spec.series.map((s) => s.name),
      'box',
    ),
  );
  return svgDocument(frame, spec.title, body);
}
