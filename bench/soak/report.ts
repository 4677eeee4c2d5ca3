/**
 * The soak's verdict, computed from what was recorded — pure, so the criteria are unit-tested:
 * outcomes by kind, latency percentiles of ok requests, RSS flatness, occupancy at the end, pass/fail.
 *
 * RSS is "flat" when the largest sample after warm-up (the first 20 % of the run) stays within 10 % of
 * the RSS at the end of warm-up: growth that keeps going after the caches fill is a leak.
 */
import { type Stats, summarize } from '../../src/bench/stats.ts';
import { formatNumber, renderTable } from '../../src/bench/table.ts';
import { type Classified, fails, OUTCOMES, type Outcome } from './outcome.ts';
import type { Sample, ServerGauges } from './sampler.ts';

export interface RequestRecord extends Classified {
  kind: string;
  model?: string;
  /** ms since the traffic started. */
  startMs: number;
  endMs: number;
  ttftMs: number | null;
  status: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  /** For failing requests: the request as sent (truncated). */
  request?: string;
}

export interface RssSummary {
  startMb: number;
  warmupEndS: number;
  atWarmupEndMb: number;
  maxAfterWarmupMb: number;
  endMb: number;
  maxMb: number;
  /** maxAfterWarmup / atWarmupEnd. */
  growth: number;
  flat: boolean;
}

export interface Criterion {
  name: string;
  pass: boolean;
  detail: string;
}

export interface SoakReport {
  durationS: number;
  requests: number;
  byOutcome: Record<Outcome, number>;
  /** 'outcome detail' → count, e.g. 'expected_4xx 400': 312. */
  byOutcomeDetail: Record<string, number>;
  /** kind → outcome → count. */
  byKind: Record<string, Partial<Record<Outcome, number>>>;
  latencyMs: { ttft: Stats | null; e2e: Stats | null };
  rss: RssSummary | null;
  end: ServerGauges | null;
  idleWaitS: number | null;
  serverExit: { code: number | null; signal: string | null; atS: number } | null;
  /** Up to 20 failing requests, as examples. */
  failures: RequestRecord[];
  criteria: Criterion[];
  pass: boolean;
}

export const WARMUP_FRACTION = 0.2;
export const FLAT_TOLERANCE = 0.1;

const mb = (kb: number) => kb / 1024;

export function rssSummary(samples: readonly Sample[], durationS: number): RssSummary | null {
  const rss = samples.filter((s): s is Sample & { rssKb: number } => s.rssKb !== null);
  if (rss.length < 2) return null;
  const warmupEndS = durationS * WARMUP_FRACTION;
  // The last sample inside warm-up (or the first one, for a run shorter than one sampling period).
  const atWarmupEnd = rss.filter((s) => s.t <= warmupEndS).at(-1) ?? rss[0];
  const after = rss.filter((s) => s.t > atWarmupEnd.t);
  const maxAfter = after.length ? Math.max(...after.map((s) => s.rssKb)) : atWarmupEnd.rssKb;
  const growth = maxAfter / atWarmupEnd.rssKb;
  return {
    startMb: mb(rss[0].rssKb),
    warmupEndS,
    atWarmupEndMb: mb(atWarmupEnd.rssKb),
    maxAfterWarmupMb: mb(maxAfter),
    endMb: mb((rss.at(-1) as Sample & { rssKb: number }).rssKb),
    maxMb: mb(Math.max(...rss.map((s) => s.rssKb))),
    growth,
    flat: growth <= 1 + FLAT_TOLERANCE,
  };
}

/** Running, waiting, KV and loads in flight all zero. */
export function isIdle(g: ServerGauges | null): boolean {
  return g !== null && g.running === 0 && g.waiting === 0 && g.kvBlocksUsed === 0 && g.loadsInFlight === 0;
}

export function buildReport(input: {
  records: readonly RequestRecord[];
  samples: readonly Sample[];
  durationS: number;
  end: ServerGauges | null;
  idleWaitS: number | null;
  serverExit: SoakReport['serverExit'];
}): SoakReport {
  const { records } = input;
  const byOutcome = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const byOutcomeDetail: Record<string, number> = {};
  const byKind: SoakReport['byKind'] = {};
  for (const r of records) {
    byOutcome[r.outcome]++;
    const key = `${r.outcome}${r.injected ? ' (injected)' : ''} ${r.detail}`;
    byOutcomeDetail[key] = (byOutcomeDetail[key] ?? 0) + 1;
    byKind[r.kind] ??= {};
    const k = byKind[r.kind];
    k[r.outcome] = (k[r.outcome] ?? 0) + 1;
  }
  const ok = records.filter((r) => r.outcome === 'ok');
  const latencyMs = {
    ttft: summarize(ok.filter((r) => r.ttftMs !== null && r.kind.endsWith('-stream')).map((r) => r.ttftMs as number)),
    e2e: summarize(ok.filter((r) => !r.kind.startsWith('admin:')).map((r) => r.endMs - r.startMs)),
  };
  const failing = records.filter(fails);
  const rss = rssSummary(input.samples, input.durationS);
  const count = (pred: (r: RequestRecord) => boolean) => failing.filter(pred).length;
  const fiveXx = count((r) => r.outcome === '5xx');
  const hangs = count((r) => r.outcome === 'hang');
  const other = failing.length - fiveXx - hangs;
  const criteria: Criterion[] = [
    { name: 'no 5xx (except injected faults)', pass: fiveXx === 0, detail: `${fiveXx} 5xx` },
    { name: 'no hangs (client timeouts)', pass: hangs === 0, detail: `${hangs} hung` },
    {
      name: 'no other unexpected answers',
      pass: other === 0,
      detail: `${other} (unexpected 4xx/2xx, stream errors, truncated streams, network errors, leaks)`,
    },
    {
      name: `RSS flat after warm-up (≤ +${FLAT_TOLERANCE * 100} %)`,
      pass: rss?.flat ?? false,
      detail: rss
        ? `${rss.atWarmupEndMb.toFixed(1)} MiB at ${rss.warmupEndS.toFixed(0)} s → max ${rss.maxAfterWarmupMb.toFixed(1)} MiB after (${((rss.growth - 1) * 100).toFixed(1)} %)`
        : 'too few RSS samples',
    },
    {
      name: 'idle at the end (running, waiting, KV, loads = 0)',
      pass: isIdle(input.end),
      detail: input.end
        ? `running ${input.end.running}, waiting ${input.end.waiting}, KV blocks ${input.end.kvBlocksUsed}, loads ${input.end.loadsInFlight}${input.idleWaitS === null ? ' (not idle in time)' : ` (after ${input.idleWaitS.toFixed(1)} s)`}`
        : 'no metrics at the end',
    },
    {
      name: 'server alive to the end',
      pass: input.serverExit === null,
      detail: input.serverExit
        ? `exited (code ${input.serverExit.code}, signal ${input.serverExit.signal}) at ${input.serverExit.atS.toFixed(1)} s`
        : 'up',
    },
  ];
  return {
    durationS: input.durationS,
    requests: records.length,
    byOutcome,
    byOutcomeDetail,
    byKind,
    latencyMs,
    rss,
    end: input.end,
    idleWaitS: input.idleWaitS,
    serverExit: input.serverExit,
    failures: failing.slice(0, 20),
    criteria,
    pass: criteria.every((c) => c.pass),
  };
}

export function renderReport(r: SoakReport): string {
  const outcomes = renderTable(
    ['outcome', 'count'],
    Object.entries(r.byOutcomeDetail)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => [k, String(n)]),
  );
  const stat = (name: string, s: Stats | null) => [
    name,
    ...(s ? [s.count, s.p50, s.p90, s.p99, s.max].map((v) => formatNumber(v)) : ['0', 'n/a', 'n/a', 'n/a', 'n/a']),
  ];
  const latency = renderTable(
    ['latency (ms, ok)', 'n', 'p50', 'p90', 'p99', 'max'],
    [stat('TTFT (streams)', r.latencyMs.ttft), stat('end-to-end', r.latencyMs.e2e)],
  );
  const rss = r.rss
    ? `RSS: start ${r.rss.startMb.toFixed(1)} MiB, end of warm-up ${r.rss.atWarmupEndMb.toFixed(1)}, max after ${r.rss.maxAfterWarmupMb.toFixed(1)}, end ${r.rss.endMb.toFixed(1)}, max ${r.rss.maxMb.toFixed(1)}`
    : 'RSS: no samples';
  const end = r.end
    ? `at the end: running ${r.end.running}, waiting ${r.end.waiting}, KV usage ${r.end.kvUsage}, slots ${r.end.slotsUsed}/${r.end.slotsCapacity}, host cache ${r.end.hostUsed}/${r.end.hostCapacity}, loads in flight ${r.end.loadsInFlight}; adapter loads so far: ${r.end.loadsOk} ok, ${r.end.loadsFailed} failed`
    : 'at the end: no metrics';
  const criteria = renderTable(
    ['criterion', 'result', 'detail'],
    r.criteria.map((c) => [c.name, c.pass ? 'pass' : 'FAIL', c.detail]),
    ['left', 'left', 'left'],
  );
  return [
    `${r.requests} requests in ${r.durationS.toFixed(0)} s`,
    outcomes,
    '',
    latency,
    '',
    rss,
    end,
    '',
    criteria,
    '',
    r.pass ? 'soak: PASS' : 'soak: FAIL',
  ].join('\n');
}

/** The same verdict as markdown tables, for docs/soak.md (printed by `npm run soak -- --from soak.json`). */
export function markdownReport(r: SoakReport): string {
  const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  const outcomes = [
    row(['outcome', 'detail', 'count']),
    row(['---', '---', '---:']),
    ...Object.entries(r.byOutcomeDetail)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => {
        const space = k.indexOf(' ');
        return row([k.slice(0, space), k.slice(space + 1), n]);
      }),
  ];
  const kinds = [
    row(['request kind', ...OUTCOMES.filter((o) => r.byOutcome[o] > 0)]),
    row(['---', ...OUTCOMES.filter((o) => r.byOutcome[o] > 0).map(() => '---:')]),
    ...Object.entries(r.byKind)
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([kind, counts]) => row([kind, ...OUTCOMES.filter((o) => r.byOutcome[o] > 0).map((o) => counts[o] ?? '')])),
  ];
  const stat = (name: string, s: Stats | null) =>
    row([name, ...(s ? [s.count, s.p50, s.p90, s.p95, s.p99, s.max].map((v) => formatNumber(v)) : ['0'])]);
  const latency = [
    row(['ok requests, ms', 'n', 'p50', 'p90', 'p95', 'p99', 'max']),
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:']),
    stat('TTFT (streams)', r.latencyMs.ttft),
    stat('end-to-end', r.latencyMs.e2e),
  ];
  const criteria = [
    row(['criterion', 'result', 'detail']),
    row(['---', '---', '---']),
    ...r.criteria.map((c) => row([c.name, c.pass ? 'pass' : '**FAIL**', c.detail])),
  ];
  return [outcomes, kinds, latency, criteria].map((t) => t.join('\n')).join('\n\n');
}
