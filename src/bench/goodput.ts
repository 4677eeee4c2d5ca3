/**
 * Goodput SLOs in AIPerf's syntax: space-separated `metric:value` pairs in the metric's display unit, e.g.
 * "time_to_first_token:200 inter_token_latency:50" (ms). A request is good when it meets every SLO:
 * at most the value for latencies, at least the value for larger-is-better metrics.
 */
import type { RecordMetric, RecordValues } from './metric-names.ts';

export interface GoodputSlo {
  metric: RecordMetric;
  threshold: number;
  largerIsBetter: boolean;
}

const DIRECTIONS: Record<RecordMetric, boolean> = {
  time_to_first_token: false,
  inter_token_latency: false,
  request_latency: false,
  output_token_throughput_per_user: true,
  output_sequence_length: true,
  input_sequence_length: true,
};

export function parseGoodput(spec: string): GoodputSlo[] {
  const slos: GoodputSlo[] = [];
  for (const pair of spec
    .trim()
    .split(/[\s,]+/)
    .filter(Boolean)) {
    const colon = pair.lastIndexOf(':');
    const metric = pair.slice(0, colon);
    const threshold = Number(pair.slice(colon + 1));
    if (colon <= 0 || !Number.isFinite(threshold)) {
      throw new Error(`--goodput: expected metric:value pairs such as 'time_to_first_token:200', got '${pair}'`);
    }
    if (!(metric in DIRECTIONS)) {
      throw new Error(`--goodput: unknown metric '${metric}' (one of ${Object.keys(DIRECTIONS).join(', ')})`);
    }
    const m = metric as RecordMetric;
    slos.push({ metric: m, threshold, largerIsBetter: DIRECTIONS[m] });
  }
  return slos;
}

/** A metric the request lacks (ITL of a one-token answer) fails its SLO, as in AIPerf. */
export function meetsSlos(values: RecordValues, slos: readonly GoodputSlo[]): boolean {
  return slos.every((slo) => {
    const v = values[slo.metric];
    if (v === undefined) return false;
    return slo.largerIsBetter ? v >= slo.threshold : v <= slo.threshold;
  });
}
