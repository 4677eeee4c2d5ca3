/**
 * Samples the server over time: its resident memory (VmRSS from /proc/<pid>/status) and the gauges of
 * /metrics (running, waiting, KV usage, adapter-tier occupancy, loads in flight), every `everyMs`.
 */
import { readFile } from 'node:fs/promises';

export interface ServerGauges {
  running: number;
  waiting: number;
  /** vllm:gpu_cache_usage_perc: KV blocks used / total, 0..1. */
  kvUsage: number;
  kvBlocksUsed: number;
  slotsUsed: number;
  slotsCapacity: number;
  hostUsed: number;
  hostCapacity: number;
  loadsInFlight: number;
  /** Adapter loads finished so far (counters), by outcome: how hard the tiers churned. */
  loadsOk: number;
  loadsFailed: number;
}

export interface Sample {
  /** Seconds since the traffic started. */
  t: number;
  rssKb: number | null;
  gauges: ServerGauges | null;
  /** Requests the soak had in flight then, and finished since the previous sample. */
  inFlight: number;
  finished: number;
}

/** VmRSS in kB, or null when the process is gone. */
export async function readRssKb(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  const m = status?.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) : null;
}

/** The value of a sample in Prometheus text (`name{labels} value`), the first whose labels include `match`. */
export function metricValue(text: string, name: string, match = ''): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (match && !rest.includes(match)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) return value;
  }
  return null;
}

export function parseGauges(text: string): ServerGauges {
  const v = (name: string, match = '') => metricValue(text, name, match) ?? Number.NaN;
  return {
    running: v('vllm:num_requests_running'),
    waiting: v('vllm:num_requests_waiting'),
    kvUsage: v('vllm:gpu_cache_usage_perc'),
    kvBlocksUsed: v('loraplex_kv_blocks_used'),
    slotsUsed: v('loraplex_adapter_slot_entries', 'state="used"'),
    slotsCapacity: v('loraplex_adapter_slot_entries', 'state="capacity"'),
    hostUsed: v('loraplex_adapter_host_entries', 'state="used"'),
    hostCapacity: v('loraplex_adapter_host_entries', 'state="capacity"'),
    loadsInFlight: v('loraplex_adapter_loads_in_flight'),
    loadsOk: v('loraplex_adapter_load_seconds_count', 'outcome="ok"'),
    loadsFailed: v('loraplex_adapter_load_seconds_count', 'outcome="failed"'),
  };
}

export async function scrapeGauges(baseUrl: string, timeoutMs = 5000): Promise<ServerGauges | null> {
  try {
    const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) return null;
    return parseGauges(await res.text());
  } catch {
    return null;
  }
}

export class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly pid: number,
    private readonly baseUrl: string,
    private readonly t0: number,
    private readonly load: () => { inFlight: number; finished: number },
  ) {}

  async sample(): Promise<Sample> {
    const [rssKb, gauges] = await Promise.all([readRssKb(this.pid), scrapeGauges(this.baseUrl)]);
    const s = { t: (performance.now() - this.t0) / 1000, rssKb, gauges, ...this.load() };
    this.samples.push(s);
    return s;
  }

  start(everyMs: number) {
    this.timer = setInterval(() => {
      if (this.busy) return; // a slow scrape skips a tick rather than piling up
      this.busy = true;
      void this.sample().finally(() => {
        this.busy = false;
      });
    }, everyMs);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
