/**
 * The parts of a Config each consumer takes: buildEngine's options, the native kernels' configuration, the
 * server's context and the engine thread's start arguments.
 */
import type { Config } from '../config/config.ts';
import type { AsyncEngine, StartOptions } from '../engine/async-engine.ts';
import type { BuildOptions } from '../engine/build-engine.ts';
import type { EngineFaults } from '../engine/faults.ts';
import type { NativeConfig } from '../kernels/native/config.ts';
import type { ServerContext } from '../server/context.ts';
import type { Lifecycle } from '../server/lifecycle.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';

/** buildEngine's options: the model, the engine limits, the adapters, precision and the native configuration. */
export function buildOptionsOf(config: Config): BuildOptions {
  const { model, limits, adapters, precision } = config;
  return {
    modelDir: model.dir,
    adapters: adapters.static,
    loraDir: adapters.loraDir ?? undefined,
    mergeAdapter: model.mergeAdapter ?? undefined,
    backend: config.native.backend,
    native: nativeConfigOf(config),
    dtype: precision.dtype ?? undefined,
    quantize: precision.quantize ?? undefined,
    floatLmHead: precision.floatLmHead || undefined,
    loraDtype: precision.loraDtype,
    kvCacheDtype: precision.kvCacheDtype,
    maxLoras: adapters.maxLoras ?? undefined,
    maxCpuLoras: adapters.maxCpuLoras ?? undefined,
    maxCpuLoraBytes: adapters.maxCpuLoraBytes ?? undefined,
    maxLoraRank: adapters.maxLoraRank,
    adapterLoadTimeout: adapters.loadTimeoutSeconds,
    maxModelLen: model.maxModelLen,
    maxBatchTokens: limits.maxBatchTokens,
    maxRunningSeqs: limits.maxRunningSeqs,
    stepTimeTargetMs: limits.stepTimeTargetMs,
    kvCacheTokens: limits.kvCacheTokens,
    maxWaitingRequests: limits.maxWaitingRequests ?? undefined,
  };
}

export function nativeConfigOf(config: Config): NativeConfig {
  const { threads, isa, bf16Dot } = config.native;
  return { threads: threads ?? undefined, isa: isa ?? undefined, bf16Dot };
}

/** The server's context; its engine is set once the engine thread is up (routes answer 503 until then). */
export function serverContextOf(config: Config, codec: TextCodec, lifecycle: Lifecycle): ServerContext {
  const { server, security, adapters } = config;
  return {
    engine: null as unknown as AsyncEngine,
    codec,
    baseModel: config.model.servedModelName,
    startedAt: Date.now(),
    apiKey: security.apiKey ?? undefined,
    limits: { maxBodyBytes: server.maxBodyBytes, maxPromptBytes: server.maxPromptBytes ?? undefined },
    admin: adapters.runtimeUpdates
      ? { allowedRoots: adapters.allowedRoots, adminKey: security.adminKey ?? undefined }
      : undefined,
    ui: server.ui,
    allowedOrigins: server.allowedOrigins,
    lifecycle,
  };
}

export interface EngineStartExtras extends Pick<StartOptions, 'onProgress' | 'signal'> {
  /** Test plumbing (--inject-fault): faults the engine injects. */
  faults?: EngineFaults;
}

/** AsyncEngine.start's arguments: the build options (failed --adapter loads skipped, not fatal) and the thread's settings. */
export function engineStartOf(config: Config, extras: EngineStartExtras = {}): [BuildOptions, StartOptions] {
  const { faults, ...start } = extras;
  return [
    { ...buildOptionsOf(config), skipInvalidAdapters: true, ...(faults ? { faults } : {}) },
    {
      loraRefreshSeconds: config.adapters.refreshIntervalSeconds,
      stallTimeoutSeconds: config.server.engineStallTimeoutSeconds,
      ...start,
    },
  ];
}
