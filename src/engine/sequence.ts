/** A request inside the engine: its tokens, how far its KV cache is computed, its blocks and its adapter. */
import type { TokenLogprobs } from './logprobs.ts';
import { randomSeed, SeededRandom } from './rng.ts';
import type { SamplingParams } from './sampling-params.ts';

export type SequenceStatus = 'waiting' | 'running' | 'finished';
export type FinishReason = 'stop' | 'length' | 'abort';

export class Sequence {
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  readonly outputIds: number[] = [];
  /** Tokens whose keys and values are in the cache. */
  numComputed = 0;
  readonly blockTable: number[] = [];
  /** Kernel slot of the adapter while running; -1 for the base. */
  adapterSlot = -1;
  readonly rng: SeededRandom;
  /** Logits of each prompt position [promptLen · vocab], when params.promptLogits. */
  promptLogits: Float32Array | null = null;
  /** Per prompt position, when params.promptLogprobs is set: the logprobs of the token there (null at 0). */
  promptLogprobs: (TokenLogprobs | null)[] | null = null;
  /** One entry per output token, when params.logprobs is set. */
  readonly outputLogprobs: TokenLogprobs[] = [];
  /** One raw logits row [vocab] per output token, when params.stepLogits is set. */
  readonly stepLogits: Float32Array[] = [];
  /** Why the engine gave up on the sequence before it ran (its adapter failed to load). */
  error: Error | null = null;

  constructor(
    readonly id: number,
    readonly promptIds: readonly number[],
    readonly adapter: string | null,
    readonly params: SamplingParams,
    /** The adapter version it was admitted with (`name@version`); slots and caches are keyed by it. */
    readonly adapterKey: string | null = adapter,
  ) {
    this.rng = new SeededRandom(params.seed ?? randomSeed());
  }

  get numTokens(): number {
    return this.promptIds.length + this.outputIds.length;
  }

  get isPrefilling(): boolean {
    return this.numComputed < this.promptIds.length;
  }

  tokenAt(i: number): number {
    return i < this.promptIds.length ? this.promptIds[i] : this.outputIds[i - this.promptIds.length];
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }
}
