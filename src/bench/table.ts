/** Plain-text tables for the terminal: a header, a rule, right-aligned numbers. */
export type Align = 'left' | 'right';

export function renderTable(headers: string[], rows: string[][], align?: Align[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const alignOf = (i: number): Align => align?.[i] ?? (i === 0 ? 'left' : 'right');
  const cell = (text: string, i: number) => (alignOf(i) === 'left' ? text.padEnd(widths[i]) : text.padStart(widths[i]));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => cell(c ?? '', i))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Fixed decimals that shrink as numbers grow: 0.0123, 1.23, 12.3, 1234. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  const abs = Math.abs(value);
  if (Number.isInteger(value)) return String(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}
