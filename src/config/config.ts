/**
 * The one configuration of a `serve` or `generate` run, built once in src/cli/ from flags, `LORAPLEX_…`
 * variables (NIM's and vLLM's names too) and the model's config.json (build-config.ts), then handed down
 * explicitly (src/cli/config-parts.ts): `buildOptionsOf` → buildEngine, `serverContextOf` → the server,
 * `nativeConfigOf` → configureNative.
 * Nothing outside src/cli/ and src/config/ reads argv or the environment.
 */
import type { Isa } from '../kernels/native/addon.ts';
import type { BlockDType, WeightDType } from '../kernels/types.ts';

/** An adapter directory served under a name (--adapter NAME=DIR). */
export interface AdapterSource {
  name: string;
  dir: string;
}

/** How adapter slots store LoRA factors; 'auto': bf16 for a 16-bit checkpoint, else f32. */
export type LoraDtypeOption = 'auto' | 'f32' | 'bf16' | 'f16' | 'int8';
/** How the KV cache stores keys and values; 'auto': the engine's choice. */
export type KvCacheDtypeOption = 'auto' | 'f32' | 'bf16';

export interface ModelSettings {
  /** Hugging Face model directory (the built-in demo's when --model is not given). */
  dir: string;
  /** No --model: the built-in demo model (and its adapters) is served. */
  demo: boolean;
  /** The base model's `id` in the API. */
  servedModelName: string;
  /** An adapter merged into the base weights on load (single-task: base speed). */
  mergeAdapter: string | null;
  /** Longest prompt + output of one sequence: the model's limit, or --max-model-len below it. */
  maxModelLen: number;
  /** The model's own limit (config.json: max_position_embeddings, times a context-extending RoPE factor). */
  modelMaxLen: number;
  /** Where the demo model is written (LORAPLEX_CACHE). */
  cacheDir: string;
}

export interface EngineLimits {
  /** Tokens per forward pass (chunked prefill). */
  maxBatchTokens: number;
  /** Sequences decoded together. */
  maxRunningSeqs: number;
  /** Latency-aware chunked prefill: a step's target time in ms (0: off; EngineOptions.stepTimeTargetMs). */
  stepTimeTargetMs: number;
  /** KV cache size in tokens; holds at least one sequence of maxModelLen. */
  kvCacheTokens: number;
  /** Queued requests beyond this get 429 (null: no bound; offline generate). */
  maxWaitingRequests: number | null;
}

export interface AdapterSettings {
  /** --adapter NAME=DIR (the demo's adapters first when serving the demo). */
  static: AdapterSource[];
  /** The adapter store: one sub-folder per adapter, loaded on first use. */
  loraDir: string | null;
  /** Rescan the store this often (0: never). */
  refreshIntervalSeconds: number;
  /** POST /v1/load_lora_adapter and /v1/unload_lora_adapter enabled. */
  runtimeUpdates: boolean;
  /** Where lora_path may point (absolute; default: the store). */
  allowedRoots: string[];
  /** Slots one batch can mix (null: buildEngine's default). */
  maxLoras: number | null;
  /** Adapters kept packed in memory (null: the engine's default). */
  maxCpuLoras: number | null;
  /** Bytes of packed adapters the host tier keeps (null: no byte budget, only maxCpuLoras). */
  maxCpuLoraBytes: number | null;
  /** Largest adapter rank accepted. */
  maxLoraRank: number;
  /** Seconds one adapter load may take. */
  loadTimeoutSeconds: number;
}

export interface ServerSettings {
  host: string;
  port: number;
  /** Request bodies beyond this get 413. */
  maxBodyBytes: number;
  /** Prompts beyond this (UTF-8 bytes) get 400 (null: 32 × maxModelLen). */
  maxPromptBytes: number | null;
  /** On SIGTERM, wait this long for running requests. */
  drainTimeoutSeconds: number;
  /** Requests waiting this long with no engine step mean a stuck engine (0: never). */
  engineStallTimeoutSeconds: number;
  /** Serve the web dashboard at / (--no-ui: off). */
  ui: boolean;
  /** Origins browsers may call the API from (CORS; '*': any); empty: no CORS headers. */
  allowedOrigins: string[];
}

export interface SecuritySettings {
  /** Bearer key required on /v1/*. */
  apiKey: string | null;
  /** Bearer key required on the adapter admin routes. */
  adminKey: string | null;
}

export interface NativeSettings {
  /** Kernels: the C++ addon or the plain TypeScript reference. */
  backend: 'native' | 'reference' | 'cuda';
  /** Kernel threads (null: every core). */
  threads: number | null;
  /** The widest instruction set the kernels may use (null: the best this CPU has). */
  isa: Isa | null;
  /** bf16 weights through bf16 dot products on AVX-512 BF16: AMX's TDPBF16PS where the CPU has it, else vdpbf16ps. */
  bf16Dot: boolean;
}

export interface PrecisionSettings {
  /** Convert the base weights on load (null: as stored). */
  dtype: WeightDType | null;
  /** Keep the projections quantized in these blocks (--quantize; GGUF Q8_0 / Q4_K / Q6_K stay blocks anyway). */
  quantize: BlockDType | null;
  /** lm_head (and a tied embedding) stays float even where the projections are blocks (--float-lm-head). */
  floatLmHead: boolean;
  loraDtype: LoraDtypeOption;
  kvCacheDtype: KvCacheDtypeOption;
}

export interface Config {
  model: ModelSettings;
  limits: EngineLimits;
  adapters: AdapterSettings;
  server: ServerSettings;
  security: SecuritySettings;
  native: NativeSettings;
  precision: PrecisionSettings;
}
