/**
 * docs/figures/peers.json: per server, per workload, one summary per repeat (the medians are taken when the
 * report is drawn), plus what each server was and whether it honoured the asked output length.
 */
import { loadavg } from 'node:os';
import type { PointResult } from '../../src/bench/result.ts';
import type { MachinePeaks } from '../machine.ts';
import type { PeerWorkload } from './workloads.ts';

export const PEERS_SCHEMA = 'loraplex-peers/1';

export interface RunSummary {
  repeat: number;
  outputTokPerS: number;
  requests: number;
  errors: number;
  /** Valid requests whose completion_tokens differed from max_tokens. */
  lengthMismatches: number;
  meanOutputTokens: number;
  ttftP50Ms: number | null;
  ttftP99Ms: number | null;
  itlP50Ms: number | null;
  itlP99Ms: number | null;
  /** The machine's 1-minute load average when the run ended (2 cores here: above 2, other work shared them). */
  loadAvg1: number;
  /** The first error message seen, when any request failed. */
  firstError?: string;
}

export interface ServerEntry {
  key: string;
  label: string;
  format: string;
  /** Build or version as reported by the server; null when it never started. */
  version: string | null;
  /** null when it ran; else why it did not (setup or start error, verbatim). */
  failure: string | null;
  /** Per workload id, one summary per repeat that ran. */
  runs: Record<string, RunSummary[]>;
}

export interface PeersArtifact {
  schema: typeof PEERS_SCHEMA;
  generatedAt: string;
  machine: MachinePeaks | null;
  model: string;
  /** The model size (bench/peers/sizes.ts) when not SmolLM2-135M: its own artifact, chart and docs section. */
  size?: '1b' | '8b';
  adapters: { count: number; rank: number; targets: string; store: string };
  client: string;
  quick: boolean;
  repeats: number;
  workloads: PeerWorkload[];
  servers: ServerEntry[];
  /** Free text for the docs: the conditions of this run (e.g. the CPU was shared). */
  note: string;
}

export function summarizePoint(point: PointResult, repeat: number): RunSummary {
  const o = point.overall;
  const s = o.stats;
  return {
    repeat,
    outputTokPerS: o.output_token_throughput,
    requests: o.request_count,
    errors: o.error_request_count,
    lengthMismatches: o.output_length_mismatch.count,
    meanOutputTokens: o.request_count > 0 ? o.total_output_tokens / o.request_count : 0,
    ttftP50Ms: s.time_to_first_token?.p50 ?? null,
    ttftP99Ms: s.time_to_first_token?.p99 ?? null,
    itlP50Ms: s.inter_token_latency?.p50 ?? null,
    itlP99Ms: s.inter_token_latency?.p99 ?? null,
    loadAvg1: loadavg()[0],
    ...(o.errors.length > 0 ? { firstError: o.errors[0].example.slice(0, 300) } : {}),
  };
}
