/** The soak's charts over time (reusing src/bench/charts): the server's RSS, and the load it carried. */
import { lineChart } from '../../src/bench/charts/line-chart.ts';
import type { Sample } from './sampler.ts';

const MAX_POINTS = 60;

/** Every k-th sample so a chart has at most MAX_POINTS points (the last one always kept). */
export function thin<T>(items: readonly T[], max = MAX_POINTS): T[] {
  if (items.length <= max) return [...items];
  const step = Math.ceil(items.length / max);
  const out = items.filter((_, i) => i % step === 0);
  if (out.at(-1) !== items.at(-1)) out.push(items.at(-1) as T);
  return out;
}

/** Time labels (m:ss) on about eight of the points, blank on the rest. */
function timeLabels(samples: readonly Sample[]): string[] {
  const every = Math.max(1, Math.round(samples.length / 8));
  return samples.map((s, i) =>
    i % every === 0 ? `${Math.floor(s.t / 60)}:${String(Math.floor(s.t % 60)).padStart(2, '0')}` : '',
  );
}

export function rssChart(samples: readonly Sample[], title: string): string {
  const points = thin(samples);
  return lineChart({
    title,
    xLabel: 'time since the traffic started (m:ss)',
    yLabel: 'server RSS (MiB)',
    categories: timeLabels(points),
    series: [{ name: 'VmRSS (MiB)', values: points.map((s) => (s.rssKb === null ? null : s.rssKb / 1024)) }],
  });
}

export function loadChart(samples: readonly Sample[], title: string): string {
  const points = thin(samples);
  // Requests finished per second over each charted interval (the sum of the samples it covers).
  const rate: (number | null)[] = [];
  let i = 0;
  let prevT = 0;
  for (const p of points) {
    let finished = 0;
    while (i < samples.length && samples[i].t <= p.t) finished += samples[i++].finished;
    rate.push(p.t > prevT ? finished / (p.t - prevT) : null);
    prevT = p.t;
  }
  return lineChart({
    title,
    xLabel: 'time since the traffic started (m:ss)',
    yLabel: 'requests',
    categories: timeLabels(points),
    series: [
      { name: 'finished per second', values: rate },
      { name: 'in flight (client)', values: points.map((s) => s.inFlight) },
      { name: 'running (server)', values: points.map((s) => s.gauges?.running ?? null) },
      { name: 'waiting (server)', values: points.map((s) => s.gauges?.waiting ?? null) },
    ],
  });
}
