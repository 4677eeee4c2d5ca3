/** The flags of `serve` and `generate` as commander hands them over (LORAPLEX_… variables already merged in). */
import type { BlockDType, WeightDType } from '../kernels/types.ts';
import type { AdapterSource, KvCacheDtypeOption, LoraDtypeOption } from './config.ts';

export interface ConfigFlags {
  model?: string;
  servedModelName?: string;
  adapter?: AdapterSource[];
  mergeAdapter?: string;
  loraDir?: string;
  loraRefreshInterval?: number;
  enableLoraRuntimeUpdates?: boolean | string;
  allowedLoraRoot?: string[];
  apiKey?: string;
  adminKey?: string;
  maxWaitingRequests?: number;
  maxBodyBytes?: number;
  maxPromptBytes?: number;
  drainTimeout?: number;
  engineStallTimeout?: number;
  /** false with --no-ui. */
  ui?: boolean;
  /** --allowed-origins: origins browsers may call the API from ('*': any). */
  allowedOrigins?: string[];
  host?: string;
  port?: number;
  backend?: 'native' | 'reference' | 'cuda';
  dtype?: WeightDType;
  quantize?: BlockDType;
  floatLmHead?: boolean | string;
  maxLoras?: number;
  maxCpuLoras?: number;
  maxCpuLoraBytes?: number;
  maxLoraRank?: number;
  maxBatchTokens?: number;
  maxRunningSeqs?: number;
  stepTimeTargetMs?: number;
  kvCacheTokens?: number;
  maxModelLen?: number;
  adapterLoadTimeout?: number;
  threads?: number;
  isa?: string;
  bf16Dot?: boolean | string;
  loraDtype?: LoraDtypeOption;
  kvCacheDtype?: KvCacheDtypeOption;
}
