/** Messages between the server thread and the engine worker thread. */

import type { AdapterInfo } from '../../adapters/cache/adapter-manager.ts';
import type { AdapterChoice } from '../../adapters/compose.ts';
import type { SerializedError } from '../../observability/errors.ts';
import type { EngineStats } from '../llm-engine.ts';
import type { TokenLogprobs } from '../logprobs.ts';
import type { SamplingParams } from '../sampling-params.ts';
import type { FinishReason } from '../sequence.ts';

/** One sequence's new token in a step. */
export interface StepToken {
  id: number;
  token: number;
  /** Set on the sequence's last token. */
  finishReason: FinishReason | null;
  promptTokens: number;
  /** When the request asked for logprobs (ids only: the server names the tokens). */
  logprobs?: TokenLogprobs;
  /** On the sequence's first token, when it asked for prompt logprobs: one per prompt token (null at 0). */
  promptLogprobs?: (TokenLogprobs | null)[];
}

/** A sequence that failed during a step (its adapter broke or failed to load). */
export interface StepRejection {
  id: number;
  error: SerializedError;
}

export interface WorkerInit {
  build: import('../build-engine.ts').BuildOptions;
  /** Rescan the adapter store this often (0: never). */
  loraRefreshSeconds?: number;
  /** Int32 [0]: bumped on every turn of the step loop, so the server thread sees a step that never returns. */
  progress?: SharedArrayBuffer;
}

/** The admin API's operations on adapters (vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter). */
export type AdminOp =
  | { op: 'load'; name: string; dir: string; inplace: boolean /** every file must stay inside */; root?: string }
  | { op: 'unload'; name: string }
  /** Keep (or stop keeping) the name's current version in the host tier (AdapterManager.pin). */
  | { op: 'pin'; name: string; pinned: boolean }
  | { op: 'rescan' };

export type AdminResult =
  | { op: 'load'; info: AdapterInfo }
  | { op: 'unload' }
  | { op: 'pin'; info: AdapterInfo }
  | { op: 'rescan'; added: string[]; removed: string[]; changed: string[] };

export type ToWorker =
  | { type: 'add'; id: number; promptIds: number[]; adapter: AdapterChoice; params: Partial<SamplingParams> }
  | { type: 'abort'; id: number }
  | { type: 'admin'; id: number; request: AdminOp }
  /** Test seam: at most `steps` more steps, then none until `steps: null` (AsyncEngine.holdSteps). */
  | { type: 'hold'; steps: number | null }
  | { type: 'shutdown' };

export type FromWorker =
  | {
      type: 'ready';
      modelName: string;
      vocabSize: number;
      adapters: AdapterInfo[];
      maxModelLen: number;
      rejected: { name: string; message: string }[];
      /** The native kernels' configuration in effect (null: the reference backend). */
      native: import('../../kernels/native/config.ts').NativeState | null;
    }
  | { type: 'failed'; message: string }
  /** The engine cannot go on (a step threw what no adapter can be blamed for); the thread stops stepping. */
  | { type: 'fatal'; message: string }
  | { type: 'progress'; stage: 'weights' | 'adapters'; done: number; total: number }
  /**
   * Every sequence's share of one engine step, in one message (the server fans it out in this order), with
   * the stats and adapter tiers after the step when they changed: a client that has its response reads them.
   */
  | { type: 'step'; tokens: StepToken[]; rejected: StepRejection[]; stats?: EngineStats; adapters?: AdapterInfo[] }
  /** A request refused when added (overloaded, invalid, unknown adapter). */
  | { type: 'rejected'; id: number; error: SerializedError }
  | { type: 'stats'; stats: EngineStats }
  | { type: 'adapters'; adapters: AdapterInfo[] }
  | { type: 'adapterLoad'; name: string; seconds: number; ok: boolean }
  | { type: 'adminDone'; id: number; result: AdminResult }
  | { type: 'adminFailed'; id: number; error: SerializedError };
