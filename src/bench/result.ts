/** The result file (JSON): the run's settings and, per load point, the metrics overall and per model. */
import type { MetricsSummary } from './metrics.ts';

export const RESULT_SCHEMA = 'loraplex-bench/1';

export interface PointResult {
  label: string;
  concurrency: number | null;
  requestRate: number | null;
  /** Requests asked for (null with a duration). */
  requestCount: number | null;
  durationSeconds: number | null;
  warmupRequestCount: number;
  startedAt: string;
  overall: MetricsSummary;
  perModel: Record<string, MetricsSummary>;
  /** Per-request records (JSONL), relative to the result file's folder. */
  recordsFile: string | null;
}

export interface BenchResult {
  schema: typeof RESULT_SCHEMA;
  tool: string;
  createdAt: string;
  url: string;
  endpointType: string;
  streaming: boolean;
  models: string[];
  modelSelectionStrategy: string;
  zipfAlpha: number | null;
  arrivalPattern: string | null;
  inputTokens: { mean: number; stddev: number } | null;
  /** Where input_sequence_length comes from: the tokenizer's count of the prompt, or usage.prompt_tokens. */
  inputLengthSource: 'tokenizer' | 'usage';
  outputTokens: { mean: number; stddev: number } | null;
  inputFile: string | null;
  tokenizer: string;
  goodput: string | null;
  seed: number;
  points: PointResult[];
}
