/**
 * Default values of every setting that has one (the flags show them in --help). The engine and the server keep
 * their own defaults for callers without a Config; test/config/defaults.test.ts holds the two equal.
 */
export const DEFAULTS = {
  limits: {
    // 512: the step's activations stay in cache, and a prompt wave is served in short steps (docs/benchmarks.md,
    // "Latency-aware chunked prefill": against 2048, TTFT p50 ×0.34 and throughput ×1.2 at concurrency 32).
    maxBatchTokens: 512,
    maxRunningSeqs: 128,
    stepTimeTargetMs: 0,
    kvCacheTokens: 32768,
    maxWaitingRequests: 1024,
  },
  adapters: { refreshIntervalSeconds: 0, maxLoraRank: 64, loadTimeoutSeconds: 60 },
  server: {
    host: '127.0.0.1',
    port: 8000,
    maxBodyBytes: 16 * 1024 * 1024,
    drainTimeoutSeconds: 30,
    engineStallTimeoutSeconds: 120,
    ui: true,
  },
  native: { backend: 'native' },
  precision: { loraDtype: 'auto', kvCacheDtype: 'auto' },
} as const;
