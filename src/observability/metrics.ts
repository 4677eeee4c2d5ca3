/**
 * Prometheus metrics, under vLLM's names where vLLM has one (dashboards and LoRA-aware routers read them
 * unchanged), plus per-adapter counters. Gauges are read from the engine's latest state at scrape time.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServingStats } from './serving-stats.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly adapterRequests: Counter<'adapter' | 'finish_reason'>;
  readonly adapterTokens: Counter<'adapter'>;
  readonly timeToFirstToken: Histogram;
  readonly adapterLoadSeconds: Histogram<'outcome'>;

  constructor(model: string, stats: () => ServingStats | null) {
    const labels = { model_name: model };
    this.registry.setDefaultLabels(labels);
    const gauge = (name: string, help: string, read: (s: ServingStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const s = stats();
          this.set(s ? read(s) : 0);
        },
      });
    gauge('vllm:num_requests_running', 'Requests being computed in the current batch', (s) => s.running);
    gauge('vllm:num_requests_waiting', 'Requests waiting to be scheduled', (s) => s.waiting);
    gauge('vllm:gpu_cache_usage_perc', 'KV-cache usage, 0..1 (CPU memory here; named as vLLM)', (s) =>
      s.kvBlocksTotal ? s.kvBlocksUsed / s.kvBlocksTotal : 0,
    );
    gauge('loraplex_kv_blocks_used', 'KV-cache blocks held by sequences', (s) => s.kvBlocksUsed);
    for (const tier of ['slot', 'host'] as const) {
      new Gauge({
        name: `loraplex_adapter_${tier}_entries`,
        help: `Adapters held in the ${tier === 'slot' ? 'kernel slots' : 'host cache'} (used and capacity)`,
        labelNames: ['state'],
        registers: [this.registry],
        collect() {
          const c = stats()?.adapterCache;
          this.set({ state: 'used' }, c ? (tier === 'slot' ? c.slotsUsed : c.hostUsed) : 0);
          this.set({ state: 'capacity' }, c ? (tier === 'slot' ? c.slotsTotal : c.hostTotal) : 0);
        },
      });
    }
    gauge('loraplex_adapter_loads_in_flight', 'Adapter loads running now', (s) => s.adapterCache.loading);
    new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'Running and waiting LoRA adapters (value: the time of the update), as vLLM reports them',
      labelNames: ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters'],
      registers: [this.registry],
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
    this.promptTokens = new Counter({
      name: 'vllm:prompt_tokens_total',
      help: 'Prompt tokens',
      registers: [this.registry],
    });
    this.generationTokens = new Counter({
      name: 'vllm:generation_tokens_total',
      help: 'Generated tokens',
      registers: [this.registry],
    });
    this.adapterRequests = new Counter({
      name: 'loraplex_adapter_requests_total',
      help: 'Finished requests per adapter (base: the base model)',
      labelNames: ['adapter', 'finish_reason'],
      registers: [this.registry],
    });
    this.adapterTokens = new Counter({
      name: 'loraplex_adapter_generation_tokens_total',
      help: 'Generated tokens per adapter',
      labelNames: ['adapter'],
      registers: [this.registry],
    });
    this.timeToFirstToken = new Histogram({
      name: 'vllm:time_to_first_token_seconds',
      help: 'Time to first token',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.adapterLoadSeconds = new Histogram({
      name: 'loraplex_adapter_load_seconds',
      help: 'Adapter loads (read, validate, pack) from request to resident, by outcome',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
  }

  adapterLoaded(seconds: number, ok: boolean) {
    this.adapterLoadSeconds.observe({ outcome: ok ? 'ok' : 'failed' }, seconds);
  }

  /** Records a finished (or aborted) request. */
  finished(adapter: string | null, promptTokens: number, generated: number, finishReason: string) {
    const name = adapter ?? 'base';
    this.promptTokens.inc(promptTokens);
    this.generationTokens.inc(generated);
    this.adapterTokens.inc({ adapter: name }, generated);
    this.adapterRequests.inc({ adapter: name, finish_reason: finishReason });
  }
}
