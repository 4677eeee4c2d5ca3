/**
 * The benchmark's settings, named after GenAI-Perf/AIPerf's flags, with their defaults and checks; and
 * the load points a run sweeps (one per --concurrency or --request-rate value).
 */
import type { SelectionStrategy } from './adapter-selection.ts';
import type { BodyShaper, EndpointType } from './endpoint.ts';
import type { GoodputSlo } from './goodput.ts';
import type { ArrivalPattern } from './schedule.ts';
import type { LengthDistribution } from './workload.ts';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'off';

export interface BenchOptions {
  url: string;
  endpointType: EndpointType;
  endpointPath: string | null;
  apiKey: string | null;
  streaming: boolean;
  /** min_tokens = max_tokens and ignore_eos, so answers have exactly the asked length. */
  fixOutputLength: boolean;
  /** Input lengths from usage.prompt_tokens (AIPerf's --use-server-token-count); outputs always use usage. */
  useServerTokenCount: boolean;
  extraInputs: Record<string, unknown>;
  /** Per-request body shaping for programmatic runs (bench:peers); the CLI sets none. */
  shapeBody?: BodyShaper | null;
  /** Reuse connections (default true). */
  keepAlive?: boolean;
  models: string[] | null;
  numAdapters: number | null;
  modelSelectionStrategy: SelectionStrategy;
  zipfAlpha: number;
  /** null: not given (1 in closed loop, unbounded with a request rate). A list sweeps. */
  concurrency: number[] | null;
  /** A list sweeps. */
  requestRate: number[] | null;
  arrivalPattern: ArrivalPattern;
  requestCount: number | null;
  durationSeconds: number | null;
  warmupRequestCount: number;
  gracePeriodSeconds: number;
  requestTimeoutSeconds: number;
  inputTokens: LengthDistribution;
  /** null: no max_tokens is sent (the server decides). */
  outputTokens: LengthDistribution | null;
  /** Distinct synthetic prompts made before the run. */
  numDatasetEntries: number;
  inputFile: string | null;
  tokenizerDir: string | null;
  goodput: GoodputSlo[];
  seed: number;
  artifactDir: string;
  progress: ProgressMode;
}

export const DEFAULT_OPTIONS: BenchOptions = {
  url: 'http://127.0.0.1:8000',
  endpointType: 'chat',
  endpointPath: null,
  apiKey: null,
  streaming: true,
  fixOutputLength: true,
  useServerTokenCount: false,
  extraInputs: {},
  models: null,
  numAdapters: null,
  modelSelectionStrategy: 'round_robin',
  zipfAlpha: 1,
  concurrency: null,
  requestRate: null,
  arrivalPattern: 'poisson',
  requestCount: null,
  durationSeconds: null,
  warmupRequestCount: 0,
  gracePeriodSeconds: 30,
  requestTimeoutSeconds: 600,
  inputTokens: { mean: 550, stddev: 0 },
  outputTokens: { mean: 128, stddev: 0 },
  numDatasetEntries: 100,
  inputFile: null,
  tokenizerDir: null,
  goodput: [],
  seed: 0,
  artifactDir: 'artifacts/loraplex-bench',
  progress: 'auto',
};

/** '1,2,4' → [1, 2, 4]; every value checked against `min` (and integrality). */
export function parseNumberList(value: string, flag: string, options: { integer: boolean; min: number }): number[] {
  const values = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
    .map(Number);
  const bad = values.find((v) => !Number.isFinite(v) || v < options.min || (options.integer && !Number.isInteger(v)));
  if (values.length === 0 || bad !== undefined) {
    const kind = options.integer ? 'integers' : 'numbers';
    throw new Error(`${flag}: expected ${kind} ≥ ${options.min}, comma-separated, got '${value}'`);
  }
  return values;
}

/** AIPerf's --extra-inputs: 'key:value' pairs (values read as JSON when they parse) or one JSON object. */
export function parseExtraInputs(values: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const value of values) {
    const trimmed = value.trim();
    if (trimmed.startsWith('{')) {
      try {
        Object.assign(out, JSON.parse(trimmed));
      } catch (e) {
        throw new Error(`--extra-inputs: '${value}' is not a JSON object (${(e as Error).message})`);
      }
      continue;
    }
    const colon = trimmed.indexOf(':');
    if (colon <= 0) throw new Error(`--extra-inputs: expected key:value, got '${value}'`);
    const raw = trimmed.slice(colon + 1);
    let parsed: unknown = raw;
    try {
      parsed = JSON.parse(raw);
    } catch {
      // a bare string
    }
    out[trimmed.slice(0, colon)] = parsed;
  }
  return out;
}

export interface LoadPoint {
  /** Most requests in flight; null: unbounded (open loop). */
  concurrency: number | null;
  requestRate: number | null;
  /** Requests to send; null with a duration. */
  requestCount: number | null;
  /** e.g. 'concurrency=4' or 'rate=2'. */
  label: string;
}

export function validateOptions(o: BenchOptions): void {
  const sweeps = (o.concurrency?.length ?? 0) > 1 && (o.requestRate?.length ?? 0) > 1;
  if (sweeps) throw new Error('sweep --concurrency or --request-rate, not both (give one a single value)');
  if (o.requestCount !== null && o.durationSeconds !== null) {
    throw new Error('give --request-count or --duration, not both');
  }
  if (o.models !== null && o.numAdapters !== null) throw new Error('give --model or --num-adapters, not both');
  if (!(o.zipfAlpha > 0)) throw new Error(`--zipf-alpha must be > 0, got ${o.zipfAlpha}`);
  if (o.inputTokens.mean < 1 || o.inputTokens.stddev < 0) throw new Error('--input-tokens: mean ≥ 1 and stddev ≥ 0');
  if (o.outputTokens && (o.outputTokens.mean < 1 || o.outputTokens.stddev < 0)) {
    throw new Error('--output-tokens: mean ≥ 1 and stddev ≥ 0');
  }
}

/** The runs of a sweep, in order; request counts default as AIPerf's do (max(10, 2 × concurrency)). */
export function loadPoints(o: BenchOptions, datasetSize: number | null): LoadPoint[] {
  const countFor = (concurrency: number | null, rate: number | null): number | null => {
    if (o.requestCount !== null) return o.requestCount;
    if (o.durationSeconds !== null) return null;
    if (datasetSize !== null) return datasetSize;
    if (rate !== null) return Math.max(10, Math.ceil(rate * 10));
    return Math.max(10, 2 * (concurrency ?? 1));
  };
  if (o.requestRate !== null) {
    const cap = o.concurrency?.[0] ?? null;
    return o.requestRate.map((rate) => ({
      concurrency: cap,
      requestRate: rate,
      requestCount: countFor(cap, rate),
      label: `rate=${rate}`,
    }));
  }
  return (o.concurrency ?? [1]).map((c) => ({
    concurrency: c,
    requestRate: null,
    requestCount: countFor(c, null),
    label: `concurrency=${c}`,
  }));
}
