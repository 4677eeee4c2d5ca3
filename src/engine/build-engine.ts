/**
 * Builds an engine from a model directory and adapter sources: load and check the model, pack its weights
 * for the kernels, then load the --adapter directories (validated now) and list the store's adapters
 * (loaded on first use).
 */

import { projectionsFromModelDir, projectionsInMemory } from '../adapters/base-projections.ts';
import { InlineAdapterLoader } from '../adapters/loader/adapter-loader.ts';
import { ThreadAdapterLoader } from '../adapters/loader/loader-thread.ts';
import { mergeAdapterIntoWeights } from '../adapters/merge.ts';
import { loadPeftAdapter } from '../adapters/peft/load.ts';
import { LocalDirStore } from '../adapters/store/local-dir-store.ts';
import { type BackendName, createBackend } from '../backends/index.ts';
import type { AdapterSource, KvCacheDtypeOption, LoraDtypeOption } from '../config/config.ts';
import { configureNative, type NativeConfig } from '../kernels/native/config.ts';
import type { BlockDType, WeightDType } from '../kernels/types.ts';
import type { ModelConfig } from '../model/config.ts';
import { loadModelDir } from '../model/model-dir.ts';
import { defaultAdapterLog } from '../observability/thread-log.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, LLMEngine } from './llm-engine.ts';

export type { AdapterSource } from '../config/config.ts';

export interface BuildOptions
  extends Partial<Omit<EngineOptions, 'backend' | 'loader' | 'loraDtype' | 'kvCacheDtype'>> {
  modelDir: string;
  /** Loaded and validated while building. */
  adapters: AdapterSource[];
  /** An adapter store (one sub-folder per adapter): listed now, each adapter loaded on first use. */
  loraDir?: string;
  backend?: BackendName;
  /** Convert the weights on load (e.g. f32 → bf16). */
  dtype?: WeightDType;
  /** Keep the projections quantized (q8_0 / q4_k blocks; GGUF Q6_K stays blocks too) for the quantized GEMM. */
  quantize?: BlockDType;
  /** lm_head (and a tied embedding) stays float where the projections are blocks. */
  floatLmHead?: boolean;
  maxLoraRank?: number;
  /** Skip (and report) adapters that fail to load instead of failing the whole build. */
  skipInvalidAdapters?: boolean;
  /** Run adapter loads on a thread of their own (the server: loads never delay a step). */
  loaderThread?: boolean;
  /** Merge this adapter into the base weights before packing (single-task deployments: no LoRA work at all). */
  mergeAdapter?: string;
  /** Seconds one adapter load on the loader thread may take before it fails (default 60). */
  adapterLoadTimeout?: number;
  /** The native kernels' threads, ISA cap and bf16 path, applied before anything runs (native backend). */
  native?: NativeConfig;
  /** Adapter slots' storage ('auto': the engine's choice from the checkpoint's dtype). */
  loraDtype?: LoraDtypeOption;
  /** The KV cache's storage ('auto': the engine's choice). */
  kvCacheDtype?: KvCacheDtypeOption;
}

/** What building reports as it goes: reading the weights, then loading each --adapter. */
export type BuildProgress = (stage: 'weights' | 'adapters', done: number, total: number) => void;

export interface BuiltEngine {
  engine: LLMEngine;
  config: ModelConfig;
  modelDir: string;
  store: LocalDirStore | null;
  /** Adapters skipped under skipInvalidAdapters, with the reason. */
  rejected: { name: string; message: string }[];
}

export const DEFAULT_MAX_LORA_RANK = 64;

export async function buildEngine(opts: BuildOptions, onProgress?: BuildProgress): Promise<BuiltEngine> {
  const {
    modelDir,
    adapters,
    loraDir,
    backend,
    dtype,
    quantize,
    floatLmHead,
    maxLoraRank = DEFAULT_MAX_LORA_RANK,
    skipInvalidAdapters,
    loaderThread,
    mergeAdapter,
    adapterLoadTimeout,
    native,
    loraDtype,
    kvCacheDtype,
    ...engineOpts
  } = opts;
  if ((backend ?? 'native') === 'native') configureNative(native ?? {});
  const loaded = await loadModelDir(modelDir, {
    ...(dtype ? { dtype } : {}),
    ...(quantize ? { quantize } : {}),
    ...(floatLmHead ? { quantizeLmHead: false } : {}),
    onProgress: onProgress && ((done, total) => onProgress('weights', done, total)),
  });
  if (mergeAdapter) {
    const baseWeights = projectionsInMemory(loaded.weights);
    const adapter = await loadPeftAdapter(mergeAdapter, loaded.config, { maxLoraRank, baseWeights });
    loaded.weights = mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config);
  }
  const store = loraDir
    ? await LocalDirStore.open(loraDir, {
        onSkip: (name, reason) => defaultAdapterLog().warn(`adapter store: folder '${name}' is not served: ${reason}`),
      })
    : null;
  const listing = store ? await store.list() : [];
  const given = Object.fromEntries(Object.entries(engineOpts).filter(([, v]) => v !== undefined));
  // DoRA's norms are taken over the weights as served: read again from the directory, unless merged into.
  const servedDir = mergeAdapter ? undefined : modelDir;
  const loader = loaderThread
    ? new ThreadAdapterLoader({
        base: loaded.config,
        maxLoraRank,
        modelDir: servedDir,
        loadTimeoutSeconds: adapterLoadTimeout,
      })
    : new InlineAdapterLoader(
        loaded.config,
        maxLoraRank,
        servedDir === undefined ? undefined : projectionsFromModelDir(servedDir, loaded.config),
      );
  const options: EngineOptions = {
    ...DEFAULT_ENGINE_OPTIONS,
    // Without a store, no more slots than adapters (each slot is memory the kernels address).
    maxLoras: store
      ? DEFAULT_ENGINE_OPTIONS.maxLoras
      : Math.max(1, Math.min(DEFAULT_ENGINE_OPTIONS.maxLoras, adapters.length)),
    // The model's own context length unless lowered (src/config/ resolves --max-model-len against it).
    maxModelLen: loaded.config.maxPositionEmbeddings,
    ...given,
    ...(loraDtype && loraDtype !== 'auto' ? { loraDtype } : {}),
    ...(kvCacheDtype && kvCacheDtype !== 'auto' ? { kvCacheDtype } : {}),
    backend: createBackend(backend ?? 'native'),
    loader,
    maxLoraRank,
  };
  const engine = new LLMEngine(loaded, options);
  const rejected: BuiltEngine['rejected'] = [];
  for (const [i, a] of adapters.entries()) {
    onProgress?.('adapters', i, adapters.length);
    try {
      await engine.adapters.register(a.name, a.dir, 'static');
    } catch (e) {
      if (!skipInvalidAdapters) {
        await engine.adapters.close();
        throw e;
      }
      rejected.push({ name: a.name, message: (e as Error).message });
    }
  }
  onProgress?.('adapters', adapters.length, adapters.length);
  engine.adapters.syncStore(listing);
  return { engine, config: loaded.config, modelDir, store, rejected };
}
