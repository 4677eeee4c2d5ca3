/**
 * The series names a Prometheus text exposition offers, read from its `# TYPE` lines (present for every
 * registered metric, with or without samples): a histogram offers name_bucket, name_sum and name_count, a
 * summary name_sum and name_count, anything else its own name.
 */
export function exportedSeries(exposition: string): Set<string> {
  const series = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m;
    series.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) series.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) series.add(name + s);
  }
  return series;
}
