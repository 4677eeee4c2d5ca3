/** Messages between the server thread and the engine worker thread. */

import type { EngineStats } from '../llm-engine.ts';
import type { SamplingParams } from '../sampling-params.ts';
import type { FinishReason } from '../sequence.ts';

export interface WorkerInit {
  build: import('../build-engine.ts').BuildOptions;
}

export type ToWorker =
  | { type: 'add'; id: number; promptIds: number[]; adapter: string | null; params: Partial<SamplingParams> }
  | { type: 'abort'; id: number }
  | { type: 'shutdown' };

export type FromWorker =
  | {
      type: 'ready';
      modelName: string;
      vocabSize: number;
      adapters: string[];
      maxModelLen: number;
      rejected: { name: string; message: string }[];
    }
  | { type: 'failed'; message: string }
  | { type: 'tokens'; id: number; tokens: number[]; finishReason: FinishReason | null; promptTokens: number }
  | { type: 'rejected'; id: number; message: string }
  | { type: 'stats'; stats: EngineStats };
