/**
 * The peer workloads of issue 11 (W1–W4): 128 prompt tokens; 128 output tokens at concurrency 1, 64 at
 * concurrency 32; adapters rank 16 on all seven projections. Output lengths are asked with max_tokens plus
 * min_tokens + ignore_eos; the artifact records whether each server honoured them.
 */

export interface PeerWorkload {
  id: string;
  label: string;
  /** 0: the base; n: n distinct adapters, round-robin. */
  adapters: number;
  concurrency: number;
  inputTokens: number;
  outputTokens: number;
  /** Measured requests per run. */
  requests: number;
  /** Unmeasured short requests first: at concurrency 32, one per adapter, so every adapter is resident. */
  warmup: number;
}

const INPUT = 128;

export const WORKLOAD_IDS = ['W1', 'W2', 'W3', 'W4'] as const;

/** Request counts: a full run (8 single-stream requests, two waves of 32) or --quick (2, one wave of 32). */
export function peerWorkloads(quick: boolean): PeerWorkload[] {
  const single = quick ? 2 : 8;
  const wide = quick ? 32 : 64;
  return [
    {
      id: 'W1',
      label: 'one stream, base',
      adapters: 0,
      concurrency: 1,
      inputTokens: INPUT,
      outputTokens: 128,
      requests: single,
      warmup: 1,
    },
    {
      id: 'W2',
      label: 'one stream, one adapter',
      adapters: 1,
      concurrency: 1,
      inputTokens: INPUT,
      outputTokens: 128,
      requests: single,
      warmup: 1,
    },
    {
      id: 'W3',
      label: '32 streams over 32 adapters',
      adapters: 32,
      concurrency: 32,
      inputTokens: INPUT,
      outputTokens: 64,
      requests: wide,
      warmup: 32,
    },
    {
      id: 'W4',
      label: '32 streams, base only',
      adapters: 0,
      concurrency: 32,
      inputTokens: INPUT,
      outputTokens: 64,
      requests: wide,
      warmup: 32,
    },
  ];
}

/** The workloads named by a comma list ('W1,W3'); all of them for undefined. */
export function selectWorkloads(all: PeerWorkload[], list: string | undefined): PeerWorkload[] {
  if (!list) return all;
  const ids = list.split(',').map((s) => s.trim().toUpperCase());
  const unknown = ids.filter((id) => !all.some((w) => w.id === id));
  if (unknown.length > 0)
    throw new Error(`--workloads: unknown ${unknown.join(', ')} (known: ${WORKLOAD_IDS.join(', ')})`);
  // In the order given: a long workload can go last, so a run cut short still has the others.
  return ids.map((id) => all.find((w) => w.id === id) as PeerWorkload);
}
