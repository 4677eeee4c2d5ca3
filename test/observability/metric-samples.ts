/**
 * Reading a prom-client registry in tests: one sample's value, by its series name (with _bucket, _sum,
 * _count for histograms) and some of its labels.
 */
import type { Registry } from 'prom-client';

export async function sampleOf(
  registry: Registry,
  series: string,
  labels: Record<string, string | number> = {},
): Promise<number> {
  const base = series.replace(/_(bucket|sum|count)$/, '');
  const metric = registry.getSingleMetric(base) ?? registry.getSingleMetric(series);
  if (!metric) throw new Error(`no metric ${series}`);
  const values = (await metric.get()).values as { value: number; labels: object; metricName?: string }[];
  const match = values.find(
    (v) =>
      (v.metricName ?? base) === series &&
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === String(want)),
  );
  return match?.value ?? 0;
}
