/**
 * ops/grafana/loraplex.json reads only what the server exports: every PromQL expression of every panel and
 * variable names series that /metrics offers (its registry's `# TYPE` lines), and the dashboard covers what
 * operators look at (throughput, TTFT/ITL/e2e, running/waiting, KV use, adapter tiers and loads, errors).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Metrics } from '../../src/observability/metrics.ts';
import { exportedSeries } from './exported-series.ts';
import { metricNamesIn } from './promql.ts';

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '../../ops/grafana/loraplex.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; query?: unknown }[] };
};

const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every PromQL expression in the dashboard, with where it is. */
function expressions(): { where: string; expr: string }[] {
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel '${p.title}'`, expr: t.expr })));
  for (const v of dashboard.templating.list) {
    const q = v.query as { query?: string } | string | undefined;
    const text = typeof q === 'string' ? q : q?.query;
    // label_values(metric, label): the metric is the expression; the label is not a metric.
    const labelValues = text && /^label_values\((.*),\s*\w+\)$/.exec(text);
    if (labelValues) exprs.push({ where: `variable '${v.name}'`, expr: labelValues[1] });
    else if (text && v.name !== 'datasource') exprs.push({ where: `variable '${v.name}'`, expr: text });
  }
  return exprs;
}

describe('Grafana dashboard', () => {
  test('reading names from PromQL: functions, labels, ranges, grouping and numbers are not metrics', () => {
    assert.deepEqual(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, adapter) (rate(vllm:e2e_request_latency_seconds_bucket{model_name=~"$model_name", le!="+Inf"}[$__rate_interval])))',
      ),
      ['vllm:e2e_request_latency_seconds_bucket'],
    );
    assert.deepEqual(metricNamesIn('sum(rate(a_total[5m] offset 1h)) / on(job) group_left max(b) * 1e-3 > bool 2'), [
      'a_total',
      'b',
    ]);
    assert.deepEqual(metricNamesIn('topk(10, c) or vector(0)'), ['c']);
  });

  test('every expression reads only series the server exports', async () => {
    const exported = exportedSeries(await new Metrics('m', () => null).registry.metrics());
    const exprs = expressions();
    assert.ok(exprs.length >= 30, `only ${exprs.length} expressions`);
    const unknown = exprs.flatMap(({ where, expr }) =>
      metricNamesIn(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${where}: ${name}`),
    );
    assert.deepEqual(unknown, [], `names /metrics does not export:\n${unknown.join('\n')}`);
  });

  test('it covers throughput, latency percentiles, the batch, KV use, adapters, errors and the process', () => {
    const read = new Set(expressions().flatMap(({ expr }) => metricNamesIn(expr)));
    for (const name of [
      'vllm:generation_tokens_total',
      'vllm:time_to_first_token_seconds_bucket',
      'vllm:inter_token_latency_seconds_bucket',
      'vllm:e2e_request_latency_seconds_bucket',
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'loraplex_adapter_slot_entries',
      'loraplex_adapter_host_entries',
      'loraplex_adapter_loads_total',
      'loraplex_adapter_load_seconds_bucket',
      'loraplex_request_errors_total',
      'vllm:request_success_total',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(read.has(name), `no panel reads ${name}`);
    }
    const quantiles = panels
      .flatMap((p) => p.targets ?? [])
      .filter((t) => t.expr.startsWith('histogram_quantile(0.99'));
    assert.ok(quantiles.length >= 4, 'p99 of TTFT, ITL, e2e and adapter loads');
  });

  test('panels have unique ids and a grid position', () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of panels) assert.ok((p as { gridPos?: unknown }).gridPos, `panel ${p.id} has no gridPos`);
  });
});
