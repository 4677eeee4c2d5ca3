/** The per-request metrics AIPerf defines (see metrics.ts for their definitions), their units and one request's values. */
export const RECORD_METRICS = [
  'time_to_first_token',
  'inter_token_latency',
  'request_latency',
  'output_token_throughput_per_user',
  'output_sequence_length',
  'input_sequence_length',
] as const;

export type RecordMetric = (typeof RECORD_METRICS)[number];

export const METRIC_UNITS: Record<RecordMetric, string> = {
  time_to_first_token: 'ms',
  inter_token_latency: 'ms',
  request_latency: 'ms',
  output_token_throughput_per_user: 'tokens/s/user',
  output_sequence_length: 'tokens',
  input_sequence_length: 'tokens',
};

export type RecordValues = Partial<Record<RecordMetric, number>>;
