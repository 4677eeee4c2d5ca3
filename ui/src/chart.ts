/** A small line chart as inline SVG: one or more series over the same samples, scaled to `max`. */
import { html } from './html.ts';

export interface Series {
  name: string;
  values: readonly number[];
  className: string;
}

const W = 320;
const H = 80;

function path(values: readonly number[], max: number, count: number): string {
  const step = count > 1 ? W / (count - 1) : 0;
  const offset = count - values.length;
  return values
    .map((v, i) => `${i === 0 ? 'M' : 'L'}${((offset + i) * step).toFixed(1)},${(H - (v / max) * H).toFixed(1)}`)
    .join(' ');
}

export function LineChart(props: {
  title: string;
  series: Series[];
  max: number;
  unit: string;
  /** Decimals of the latest values in the legend. */
  digits: number;
  testId: string;
}) {
  const count = Math.max(2, ...props.series.map((s) => s.values.length));
  const max = props.max > 0 ? props.max : 1;
  return html`
    <figure class="chart" data-testid=${props.testId}>
      <figcaption>
        ${props.title}
        ${props.series.map(
          (s) =>
            html`<span class=${`legend ${s.className}`}>${s.name} ${s.values.at(-1)?.toFixed(props.digits) ?? '–'}${props.unit}</span>`,
        )}
      </figcaption>
      <svg viewBox=${`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label=${props.title}>
        <line x1="0" y1=${H} x2=${W} y2=${H} class="axis" />
        ${props.series.map(
          (s) =>
            html`<path d=${path(s.values, max, count)} class=${`line ${s.className}`} data-points=${s.values.length} />`,
        )}
      </svg>
      <div class="scale">max ${props.max.toFixed(0)}${props.unit}</div>
    </figure>
  `;
}
