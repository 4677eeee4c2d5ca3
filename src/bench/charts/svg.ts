/** SVG building blocks shared by the charts: escaping, nice axis ticks, the palette, the frame. */
export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export const FONT = "font-family='system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif'";

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string,
  );
}

/** Ticks at 1, 2 or 5 × 10^k covering [0, max] (or [min, max]) in about `count` steps. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) as number;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let t = first; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

export function formatTick(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (abs >= 1e4) return `${Number((value / 1e3).toPrecision(3))}k`;
  return String(Number(value.toPrecision(4)));
}

/** Rough text width at a font size, for laying out legends without a renderer. */
export function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.58;
}

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export const DEFAULT_FRAME: Frame = { width: 760, height: 440, left: 76, right: 28, top: 78, bottom: 64 };

export function svgDocument(frame: Frame, title: string, body: string[]): string {
  return [
    `<svg xmlns='http://www.w3.org/2000/svg' width='${frame.width}' height='${frame.height}' viewBox='0 0 ${frame.width} ${frame.height}' role='img' aria-label='${escapeXml(title)}'>`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x='0' y='0' width='${frame.width}' height='${frame.height}' fill='#ffffff'/>`,
    `<text x='${frame.width / 2}' y='30' text-anchor='middle' ${FONT} font-size='17' font-weight='600' fill='#111827'>${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Horizontal gridlines, y tick labels and the rotated y-axis label. */
export function yAxis(frame: Frame, ticks: number[], y: (v: number) => number, label: string): string[] {
  const out: string[] = [];
  const x0 = frame.left;
  const x1 = frame.width - frame.right;
  for (const t of ticks) {
    const yy = y(t).toFixed(1);
    out.push(`<line x1='${x0}' x2='${x1}' y1='${yy}' y2='${yy}' stroke='#e5e7eb' stroke-width='1'/>`);
    out.push(
      `<text x='${x0 - 8}' y='${yy}' dy='0.32em' text-anchor='end' ${FONT} font-size='12' fill='#374151'>${formatTick(t)}</text>`,
    );
  }
  const midY = (frame.top + frame.height - frame.bottom) / 2;
  out.push(
    `<text transform='translate(18 ${midY}) rotate(-90)' text-anchor='middle' ${FONT} font-size='13' fill='#111827'>${escapeXml(label)}</text>`,
  );
  out.push(
    `<line x1='${x0}' x2='${x0}' y1='${frame.top}' y2='${frame.height - frame.bottom}' stroke='#9ca3af' stroke-width='1'/>`,
  );
  out.push(
    `<line x1='${x0}' x2='${x1}' y1='${frame.height - frame.bottom}' y2='${frame.height - frame.bottom}' stroke='#9ca3af' stroke-width='1'/>`,
  );
  return out;
}

/** Category labels under the x axis and the x-axis label. */
export function xCategoryAxis(frame: Frame, labels: string[], x: (i: number) => number, label: string): string[] {
  const base = frame.height - frame.bottom;
  const out = labels.map(
    (l, i) =>
      `<line x1='${x(i).toFixed(1)}' x2='${x(i).toFixed(1)}' y1='${base}' y2='${base + 5}' stroke='#9ca3af'/>` +
      `<text x='${x(i).toFixed(1)}' y='${base + 20}' text-anchor='middle' ${FONT} font-size='12' fill='#374151'>${escapeXml(l)}</text>`,
  );
  out.push(
    `<text x='${(frame.left + frame.width - frame.right) / 2}' y='${frame.height - 16}' text-anchor='middle' ${FONT} font-size='13' fill='#111827'>${escapeXml(label)}</text>`,
  );
  return out;
}

/** A one-row legend under the title, centred. */
export function legend(frame: Frame, names: string[], marker: 'line' | 'box'): string[] {
  const gap = 22;
  const widths = names.map((n) => 26 + textWidth(n, 12));
  const total = widths.reduce((a, b) => a + b, 0) + gap * (names.length - 1);
  let x = (frame.width - total) / 2;
  const y = 54;
  const out: string[] = [];
  names.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    out.push(
      marker === 'line'
        ? `<line x1='${x.toFixed(1)}' x2='${(x + 18).toFixed(1)}' y1='${y}' y2='${y}' stroke='${color}' stroke-width='2.5'/><circle cx='${(x + 9).toFixed(1)}' cy='${y}' r='3.5' fill='${color}'/>`
        : `<rect x='${x.toFixed(1)}' y='${y - 6}' width='14' height='12' rx='2' fill='${color}'/>`,
    );
    out.push(
      `<text x='${(x + 24).toFixed(1)}' y='${y}' dy='0.32em' ${FONT} font-size='12' fill='#374151'>${escapeXml(name)}</text>`,
    );
    x += widths[i] + gap;
  });
  return out;
}
