/**
 * Prometheus metrics, under vLLM's names and bucket boundaries where vLLM has one (its dashboards, alerts and
 * LoRA-aware routers read them unchanged), plus per-adapter counters, HTTP statuses and the process's own
 * metrics (prom-client's defaults). Gauges are read from the engine's latest state at scrape time; the
 * per-request figures come from request-trace.ts.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ServingStats } from './serving-stats.ts';

/** vLLM's boundaries (vllm/v1/metrics/loggers.py), so histogram_quantile reads alike on both servers. */
export const VLLM_BUCKETS = {
  timeToFirstToken: [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
  ],
  /** Inter-token latency and time per output token. */
  tokenLatency: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80],
  requestLatency: [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680],
  /** 1, 2, 5, 10, … as vLLM's build_1_2_5_buckets; vLLM stops at max_model_len, here at 5·10⁵. */
  tokenCount: [1, 2, 5].flatMap((m) => [0, 1, 2, 3, 4, 5].map((e) => m * 10 ** e)).sort((a, b) => a - b),
} as const;

/** Set on a request's log line and its status when the client left before the whole response went out (nginx). */
export const CLIENT_CLOSED_STATUS = 499;

export class Metrics {
  readonly registry = new Registry();
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly requestSuccess: Counter<'finished_reason'>;
  readonly adapterRequests: Counter<'adapter' | 'finish_reason'>;
  readonly adapterTokens: Counter<'adapter'>;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  /** vLLM's name for the inter-token latency until 0.11 renamed it; the same observations. */
  readonly timePerOutputToken: Histogram;
  readonly requestTimePerOutputToken: Histogram;
  readonly e2eRequestLatency: Histogram;
  readonly requestPromptTokens: Histogram;
  readonly requestGenerationTokens: Histogram;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly requestErrors: Counter<'status' | 'code'>;
  readonly adapterLoads: Counter<'outcome'>;
  readonly adapterLoadSeconds: Histogram<'outcome'>;

  constructor(model: string, stats: () => ServingStats | null) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ model_name: model });
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, read: (s: ServingStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = stats();
          this.set(s ? read(s) : 0);
        },
      });
    const kvUsage = (s: ServingStats) => (s.kvBlocksTotal ? s.kvBlocksUsed / s.kvBlocksTotal : 0);
    gauge('vllm:num_requests_running', 'Requests being computed in the current batch', (s) => s.running);
    gauge('vllm:num_requests_waiting', 'Requests waiting to be scheduled', (s) => s.waiting);
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage, 0..1', kvUsage);
    gauge('vllm:gpu_cache_usage_perc', 'KV-cache usage, 0..1 (vLLM before 0.10 named it so)', kvUsage);
    gauge('loraplex_kv_blocks_used', 'KV-cache blocks held by sequences', (s) => s.kvBlocksUsed);
    gauge('loraplex_kv_blocks_total', 'KV-cache blocks in all', (s) => s.kvBlocksTotal);
    for (const tier of ['slot', 'host'] as const) {
      new Gauge({
        name: `loraplex_adapter_${tier}_entries`,
        help: `Adapters held in the ${tier === 'slot' ? 'kernel slots' : 'host cache'} (used and capacity)`,
        labelNames: ['state'],
        registers,
        collect() {
          const c = stats()?.adapterCache;
          this.set({ state: 'used' }, c ? (tier === 'slot' ? c.slotsUsed : c.hostUsed) : 0);
          this.set({ state: 'capacity' }, c ? (tier === 'slot' ? c.slotsTotal : c.hostTotal) : 0);
        },
      });
    }
    new Gauge({
      name: 'loraplex_adapter_host_bytes',
      help: 'Bytes of packed adapters in the host cache (used) and its --max-cpu-lora-bytes budget (capacity; absent without one)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const c = stats()?.adapterCache;
        this.set({ state: 'used' }, c?.hostBytes ?? 0);
        if (c?.hostBytesCapacity !== undefined && Number.isFinite(c.hostBytesCapacity)) {
          this.set({ state: 'capacity' }, c.hostBytesCapacity);
        }
      },
    });
    gauge('loraplex_adapter_loads_in_flight', 'Adapter loads running now', (s) => s.adapterCache.loading);
    new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'Running and waiting LoRA adapters (value: the time of the update), as vLLM reports them',
      labelNames: ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters'],
      registers,
      collect() {
        const s = stats();
        this.reset();
        if (!s) return;
        this.set(
          {
            max_lora: String(s.maxLoras),
            running_lora_adapters: s.runningAdapters.join(','),
            waiting_lora_adapters: s.waitingAdapters.join(','),
          },
          Date.now() / 1000,
        );
      },
    });
    this.promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Prompt tokens', registers });
    this.generationTokens = new Counter({ name: 'vllm:generation_tokens_total', help: 'Generated tokens', registers });
    this.requestSuccess = new Counter({
      name: 'vllm:request_success_total',
      help: 'Finished choices (one engine sequence each) by finish reason: stop, length or abort',
      labelNames: ['finished_reason'],
      registers,
    });
    this.adapterRequests = new Counter({
      name: 'loraplex_adapter_requests_total',
      help: 'Finished choices per adapter (base: the base model)',
      labelNames: ['adapter', 'finish_reason'],
      registers,
    });
    this.adapterTokens = new Counter({
      name: 'loraplex_adapter_generation_tokens_total',
      help: 'Generated tokens per adapter',
      labelNames: ['adapter'],
      registers,
    });
    const histogram = (name: string, help: string, buckets: readonly number[]) =>
      new Histogram({ name, help, buckets: [...buckets], registers });
    this.timeToFirstToken = histogram(
      'vllm:time_to_first_token_seconds',
      'From the request reaching the server to its first generated token',
      VLLM_BUCKETS.timeToFirstToken,
    );
    this.interTokenLatency = histogram(
      'vllm:inter_token_latency_seconds',
      'Time between successive tokens of one choice',
      VLLM_BUCKETS.tokenLatency,
    );
    this.timePerOutputToken = histogram(
      'vllm:time_per_output_token_seconds',
      'Time between successive tokens of one choice (the name vLLM used before inter_token_latency_seconds)',
      VLLM_BUCKETS.tokenLatency,
    );
    this.requestTimePerOutputToken = histogram(
      'vllm:request_time_per_output_token_seconds',
      "A choice's mean time per output token after its first",
      VLLM_BUCKETS.tokenLatency,
    );
    this.e2eRequestLatency = histogram(
      'vllm:e2e_request_latency_seconds',
      'From the request reaching the server to its last byte, for requests that reached the engine',
      VLLM_BUCKETS.requestLatency,
    );
    this.requestPromptTokens = histogram(
      'vllm:request_prompt_tokens',
      'Prompt tokens per prompt',
      VLLM_BUCKETS.tokenCount,
    );
    this.requestGenerationTokens = histogram(
      'vllm:request_generation_tokens',
      'Generated tokens per choice',
      VLLM_BUCKETS.tokenCount,
    );
    this.httpRequests = new Counter({
      name: 'loraplex_http_requests_total',
      help: 'HTTP responses by route (unmatched: no route), method and status (499: the client left first)',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.requestErrors = new Counter({
      name: 'loraplex_request_errors_total',
      help: 'Error responses by status and error code (see the error catalogue)',
      labelNames: ['status', 'code'],
      registers,
    });
    this.adapterLoads = new Counter({
      name: 'loraplex_adapter_loads_total',
      help: 'Adapter loads finished, by outcome (ok or failed)',
      labelNames: ['outcome'],
      registers,
    });
    this.adapterLoadSeconds = new Histogram({
      name: 'loraplex_adapter_load_seconds',
      help: 'Adapter loads (read, validate, pack) from request to resident, by outcome',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  adapterLoaded(seconds: number, ok: boolean) {
    const outcome = ok ? 'ok' : 'failed';
    this.adapterLoads.inc({ outcome });
    this.adapterLoadSeconds.observe({ outcome }, seconds);
  }

  /** A prompt went to the engine (each of its n choices then ends in `choiceFinished`). */
  prompt(tokens: number) {
    this.promptTokens.inc(tokens);
    this.requestPromptTokens.observe(tokens);
  }

  /** One gap between successive tokens of a choice. */
  tokenGap(seconds: number) {
    this.interTokenLatency.observe(seconds);
    this.timePerOutputToken.observe(seconds);
  }

  /**
   * A choice (one engine sequence) ended. `decodeSeconds`: from its first token to its last (null: none came).
   */
  choiceFinished(adapter: string | null, generated: number, finishReason: string, decodeSeconds: number | null) {
    const name = adapter ?? 'base';
    this.generationTokens.inc(generated);
    this.adapterTokens.inc({ adapter: name }, generated);
    this.adapterRequests.inc({ adapter: name, finish_reason: finishReason });
    this.requestSuccess.inc({ finished_reason: finishReason });
    this.requestGenerationTokens.observe(generated);
    if (decodeSeconds !== null && generated > 1)
      this.requestTimePerOutputToken.observe(decodeSeconds / (generated - 1));
  }

  /** An HTTP response went out (or the client left first: CLIENT_CLOSED_STATUS). */
  responded(route: string, method: string, status: number, errorCode: string | null) {
    this.httpRequests.inc({ route, method, status: String(status) });
    if (status >= 400) this.requestErrors.inc({ status: String(status), code: errorCode ?? 'none' });
  }
}
