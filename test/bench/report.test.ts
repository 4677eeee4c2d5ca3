/**
 * Outputs: compare (ours vs ours, ours vs an AIPerf export), the console tables, and the SVG charts —
 * well-formed XML with a title, axis labels and a legend.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { summaryFromAiperf } from '../../src/bench/aiperf-import.ts';
import { benchCharts } from '../../src/bench/charts/bench-charts.ts';
import { lineChart } from '../../src/bench/charts/line-chart.ts';
import { escapeXml, niceTicks } from '../../src/bench/charts/svg.ts';
import { comparableFrom, compareSummaries, renderComparison, rowsBeyondTolerance } from '../../src/bench/compare.ts';
import { type MetricsSummary, summarizeByModel } from '../../src/bench/metrics.ts';
import type { RequestRecord } from '../../src/bench/record.ts';
import { metricsTable, renderPoint, sweepTable } from '../../src/bench/report.ts';
import { type BenchResult, type PointResult, RESULT_SCHEMA } from '../../src/bench/result.ts';

function records(scale: number): RequestRecord[] {
  return Array.from({ length: 8 }, (_, i) => ({
    index: i,
    model: ['demo-a', 'demo-b & co'][i % 2],
    startMs: i * 10,
    firstContentMs: i * 10 + 20 * scale,
    lastContentMs: i * 10 + 20 * scale + 90 * scale,
    endMs: i * 10 + 120 * scale,
    contentResponses: 10,
    inputTokens: 32,
    requestedOutputTokens: 10,
    usage: { promptTokens: 40, completionTokens: 10 },
    outputTokens: 10,
    outputTokensSource: 'usage' as const,
    error: null,
  }));
}

function point(concurrency: number, scale: number): PointResult {
  const { overall, perModel } = summarizeByModel(records(scale), { streaming: true });
  return {
    label: `concurrency=${concurrency}`,
    concurrency,
    requestRate: null,
    requestCount: 8,
    durationSeconds: null,
    warmupRequestCount: 0,
    startedAt: '2026-11-30T00:00:00.000Z',
    overall,
    perModel,
    recordsFile: null,
  };
}

function result(scales: number[]): BenchResult {
  return {
    schema: RESULT_SCHEMA,
    tool: 'loraplex bench',
    createdAt: '2026-11-30T00:00:00.000Z',
    url: 'http://127.0.0.1:8000',
    endpointType: 'chat',
    streaming: true,
    models: ['demo-a', 'demo-b & co'],
    modelSelectionStrategy: 'round_robin',
    zipfAlpha: null,
    arrivalPattern: null,
    inputTokens: { mean: 32, stddev: 0 },
    inputLengthSource: 'tokenizer',
    outputTokens: { mean: 10, stddev: 0 },
    inputFile: null,
    tokenizer: 'qwen',
    goodput: null,
    seed: 0,
    points: scales.map((s, i) => point(2 ** i, s)),
  };
}

/** A strict-enough XML check: every tag closes in order, attributes are quoted, text has no raw '<' or '&'. */
function assertWellFormed(svg: string) {
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+='[^'<]*'|\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (const m of svg.matchAll(tag)) {
    const text = svg.slice(last, m.index);
    assert.doesNotMatch(text, /<|&(?!(lt|gt|amp|apos|quot);)/, `bad text before ${m[0]}`);
    last = (m.index as number) + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the wrong tag`);
    else if (!selfClosing) stack.push(name);
  }
  assert.equal(svg.slice(last).trim(), '');
  assert.deepEqual(stack, [], 'unclosed tags');
  assert.ok(svg.startsWith("<svg xmlns='http://www.w3.org/2000/svg'"));
}

describe('compare', () => {
  test('ratios and relative differences, B against A', () => {
    const a = point(1, 1).overall;
    const b = point(1, 1.1).overall;
    const rows = compareSummaries(a, b);
    const ttft = rows.find((r) => r.metric === 'TTFT (ms) p50');
    assert.ok(ttft);
    assert.ok(Math.abs((ttft.ratio as number) - 1.1) < 1e-9);
    assert.ok(Math.abs((ttft.diffPercent as number) - 10) < 1e-9);
    const count = rows.find((r) => r.metric === 'Request count');
    assert.equal(count?.diffPercent, 0);
  });

  test('an AIPerf export is read into the same shape and paired with our point', () => {
    const aiperf = {
      aiperf_version: '0.13.0',
      time_to_first_token: { unit: 'ms', avg: 22, p50: 21, p90: 30, p99: 33, min: 20, max: 34, std: 1, count: 8 },
      inter_token_latency: { unit: 'ms', avg: 10, p50: 10, p90: 11, p99: 12, min: 9, max: 12, std: 1, count: 8 },
      output_token_throughput: { unit: 'tokens/sec', avg: 500 },
      request_throughput: { unit: 'requests/sec', avg: 50 },
      request_count: { unit: 'requests', avg: 8 },
      benchmark_duration: { unit: 'sec', avg: 0.16 },
      input_config: { phases: [{ kind: 'profiling', type: 'concurrency', concurrency: 1, requests: 8 }] },
    };
    const summary: MetricsSummary = summaryFromAiperf(aiperf);
    assert.equal(summary.stats.time_to_first_token?.p50, 21);
    assert.equal(summary.request_count, 8);
    assert.equal(summary.stats.request_latency, null);
    const ours = comparableFrom(result([1]), 'ours.json');
    const theirs = comparableFrom(aiperf, 'aiperf.json');
    assert.equal(theirs.tool, 'aiperf 0.13.0');
    assert.equal(theirs.points[0].label, 'concurrency=1');
    const text = renderComparison(ours, theirs, { percent: 5 });
    assert.match(text, /^A: ours\.json \(loraplex bench\)/);
    assert.match(text, /concurrency=1\n/);
    assert.match(text, /TTFT \(ms\) p50\s+20\s+21\s+1\.050\s+\+5\.0%\s+yes/);
    assert.throws(() => comparableFrom({ hello: 1 }, 'x.json'), /neither/);
  });

  test('rowsBeyondTolerance lists the metrics that differ by more than the tolerance (the CI check)', () => {
    const run = (points: PointResult[]) => ({ source: 'x', tool: 't', points });
    const a = run([point(1, 1)]);
    const b = run([point(1, 1.1)]);
    const beyond = rowsBeyondTolerance(a, b, { percent: 5 });
    assert.ok(
      beyond.some((line) => /TTFT \(ms\) p50 \+10\.0% \(limit 5%\)/.test(line)),
      beyond.join('\n'),
    );
    assert.deepEqual(rowsBeyondTolerance(a, b, { percent: 50 }), []);
    assert.deepEqual(rowsBeyondTolerance(a, a, { percent: 0 }), []);
  });

  test('p99 rows take the tail tolerance; every other row keeps the tolerance', () => {
    const run = (points: PointResult[]) => ({ source: 'x', tool: 't', points });
    const a = run([point(1, 1)]);
    const b = run([point(1, 1.1)]);
    const beyond = rowsBeyondTolerance(a, b, { percent: 5, tailPercent: 15 });
    assert.ok(beyond.length > 0, 'the +10% p50 rows still fail');
    assert.ok(
      beyond.every((line) => !/ p99 /.test(line)),
      beyond.join('\n'),
    );
    const strictTail = rowsBeyondTolerance(a, b, { percent: 50, tailPercent: 5 });
    assert.ok(
      strictTail.length > 0 && strictTail.every((line) => / p99 \+10\.0% \(limit 5%\)/.test(line)),
      strictTail.join('\n'),
    );
    const text = renderComparison(a, b, { percent: 5, tailPercent: 15 });
    assert.match(text, /TTFT \(ms\) p99 .* yes\n/);
    assert.match(text, /TTFT \(ms\) p50 .* NO\n/);
  });
});

describe('console report', () => {
  test('metric table, per-model table and sweep summary', () => {
    const r = result([1, 2]);
    const table = metricsTable(r.points[0].overall);
    assert.match(table, /Time to First Token \(ms\)\s+20\s+20\s+20/);
    assert.match(table, /Inter Token Latency \(ms\)\s+10\s/);
    assert.match(table, /Request Count \(requests\)\s+8/);
    const text = renderPoint(r.points[0]);
    assert.match(text, /demo-b & co\s+4\s+0/);
    assert.match(sweepTable(r), /concurrency=2/);
  });
});

describe('charts', () => {
  test('nice ticks cover the range in round steps', () => {
    assert.deepEqual(niceTicks(0, 97), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0, 0.42), [0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    assert.equal(escapeXml(`a<b & 'c'`), 'a&lt;b &amp; &apos;c&apos;');
  });

  test('every chart of a sweep is well-formed SVG with title, axis labels and legend', () => {
    const charts = benchCharts(result([1, 1.5, 3]));
    assert.deepEqual(
      charts.map((c) => c.name),
      [
        'throughput.svg',
        'ttft.svg',
        'itl.svg',
        'request-latency.svg',
        'adapters-latency-c1.svg',
        'adapters-itl-c1.svg',
        'adapters-throughput-c1.svg',
        'adapters-latency-c2.svg',
        'adapters-itl-c2.svg',
        'adapters-throughput-c2.svg',
        'adapters-latency-c4.svg',
        'adapters-itl-c4.svg',
        'adapters-throughput-c4.svg',
      ],
    );
    for (const c of charts) assertWellFormed(c.svg);
    const ttft = charts[1].svg;
    assert.match(ttft, /<title>Time to first token<\/title>/);
    assert.match(ttft, />concurrency \(requests in flight\)</);
    assert.match(ttft, />time to first token \(ms\)</);
    for (const k of ['p50', 'p90', 'p99']) assert.match(ttft, new RegExp(`>${k}</text>`));
    assert.match(charts[4].svg, />demo-b &amp; co</);
  });

  test('gaps (null values) are skipped, not drawn at zero', () => {
    const svg = lineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      categories: ['1', '2', '3'],
      series: [{ name: 's', values: [1, null, 3] }],
    });
    assertWellFormed(svg);
    assert.equal(svg.match(/<circle [^>]*r='4'/g)?.length, 2); // the data points, not the legend's marker
  });
});
