/**
 * The engine: add requests, step, collect tokens. `step()` = schedule → run → postprocess (nano-vllm's
 * shape). This class is synchronous and single-threaded; the server runs it inside a worker thread.
 */
import type { Kernels, LoraDtype, PackedAdapter } from '../kernels/types.ts';
import type { ModelConfig } from '../model/config.ts';
import { DecoderModel } from '../model/forward.ts';
import { fuseWeights } from '../model/fused-weights.ts';
import { numModules } from '../model/modules.ts';
import { ropeInvFreq } from '../model/rope.ts';
import type { LoadedModel } from '../model/weights.ts';
import { AdapterSlots } from './adapter-slots.ts';
import { BlockManager } from './kv/block-manager.ts';
import { allocateKvCache } from './kv/kv-cache.ts';
import { ModelRunner } from './model-runner.ts';
import { type SamplingParams, samplingParams } from './sampling-params.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { type FinishReason, Sequence } from './sequence.ts';

export interface EngineOptions {
  kernels: Kernels;
  /** Adapter slots a batch can mix (vLLM's max_loras, NIM's max GPU LoRAs). */
  maxLoras: number;
  blockSize: number;
  /** KV cache size, in tokens (rounded up to whole blocks). */
  kvCacheTokens: number;
  maxBatchTokens: number;
  maxRunningSeqs: number;
  /** Longest prompt + output a sequence may reach. */
  maxModelLen: number;
  /**
   * How adapter slots store LoRA matrices. Default: 'bf16' for a bf16 / f16 checkpoint (its adapters gain
   * nothing from f32, and decode reads half the bytes), else 'f32'.
   */
  loraDtype?: LoraDtype;
}

/** The slots' storage for a model: the option when given, else bf16 for 16-bit checkpoints. */
export function loraDtypeFor(config: ModelConfig, option?: LoraDtype): LoraDtype {
  if (option) return option;
  return config.dtype === 'bf16' || config.dtype === 'f16' ? 'bf16' : 'f32';
}

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, 'kernels'> = {
  maxLoras: 32,
  blockSize: 16,
  kvCacheTokens: 32768,
  maxBatchTokens: 2048,
  maxRunningSeqs: 128,
  maxModelLen: 4096,
};

export interface GenerationRequest {
  promptIds: number[];
  adapter: string | null;
  params?: Partial<SamplingParams>;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  runningAdapters: string[];
  waitingAdapters: string[];
  maxLoras: number;
}

export interface StepOutput {
  seq: Sequence;
  newToken: number | null;
  finished: boolean;
}

export class LLMEngine {
  readonly model: DecoderModel;
  readonly scheduler: Scheduler;
  readonly blocks: BlockManager;
  readonly slots: AdapterSlots;
  readonly runner: ModelRunner;
  private nextId = 0;
  private readonly adapters = new Map<string, PackedAdapter>();
  readonly eosTokenIds: Set<number>;

  readonly config: ModelConfig;

  /** The engine packs the model's weights for its kernels; drop `loaded` afterwards to free the originals. */
  constructor(
    loaded: LoadedModel,
    readonly options: EngineOptions,
  ) {
    const { config } = loaded;
    this.config = config;
    const K = options.kernels;
    this.model = new DecoderModel(
      config,
      fuseWeights(config, loaded.weights, K),
      K,
      ropeInvFreq(config),
      options.blockSize,
    );
    const numBlocks = Math.ceil(options.kvCacheTokens / options.blockSize);
    this.blocks = new BlockManager(numBlocks, options.blockSize);
    const kv = allocateKvCache(config, numBlocks, options.blockSize);
    this.slots = new AdapterSlots(
      K,
      options.maxLoras,
      numModules(config),
      (name) => {
        const packed = this.adapters.get(name);
        if (!packed) throw new Error(`adapter '${name}' is not loaded`);
        return packed;
      },
      loraDtypeFor(config, options.loraDtype),
    );
    this.runner = new ModelRunner(this.model, K, kv, this.blocks, this.slots.bank);
    this.scheduler = new Scheduler(
      { maxBatchTokens: options.maxBatchTokens, maxRunningSeqs: options.maxRunningSeqs },
      this.blocks,
      this.slots,
    );
    this.eosTokenIds = new Set(config.eosTokenIds);
  }

  /** Makes an adapter (already parsed, validated and packed) available to requests. */
  addAdapter(name: string, packed: PackedAdapter) {
    if (this.adapters.has(name)) this.slots.evict(name);
    this.adapters.set(name, packed);
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  addRequest(req: GenerationRequest): Sequence {
    if (req.adapter !== null && !this.adapters.has(req.adapter)) {
      throw new Error(`adapter '${req.adapter}' is not loaded`);
    }
    if (req.promptIds.length === 0) throw new RangeError('the prompt is empty');
    const vocab = this.config.vocabSize;
    for (const id of req.promptIds) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab)
        throw new RangeError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    }
    const params = samplingParams(req.params);
    if (req.promptIds.length + params.maxTokens > this.options.maxModelLen) {
      throw new RangeError(
        `prompt (${req.promptIds.length} tokens) + max_tokens (${params.maxTokens}) exceeds the maximum length ${this.options.maxModelLen}`,
      );
    }
    if (this.blocks.blocksFor(req.promptIds.length + params.maxTokens) > this.blocks.numBlocks) {
      throw new RangeError('the request needs more KV cache than the engine has');
    }
    const seq = new Sequence(this.nextId++, req.promptIds, req.adapter, params);
    this.scheduler.add(seq);
    return seq;
  }

  /** What the scheduler holds now, for metrics and LoRA-aware routers. */
  stats(): EngineStats {
    const { running, waiting } = this.scheduler;
    const names = (seqs: Sequence[]) => [...new Set(seqs.map((s) => s.adapter).filter((a): a is string => a !== null))];
    return {
      running: running.length,
      waiting: waiting.length,
      kvBlocksUsed: this.blocks.numUsed,
      kvBlocksTotal: this.blocks.numBlocks,
      runningAdapters: names(running),
      waitingAdapters: names(waiting),
      maxLoras: this.options.maxLoras,
    };
  }

  abort(seq: Sequence) {
    if (seq.isFinished) return;
    seq.finishReason = 'abort';
    this.scheduler.finish(seq);
  }

  hasUnfinished(): boolean {
    return this.scheduler.hasWork;
  }

  step(): StepOutput[] {
    const { entries } = this.scheduler.schedule();
    const sampled = this.runner.run(entries);
    const outputs: StepOutput[] = [];
    for (const { entry, token } of sampled) {
      const seq = entry.seq;
      seq.outputIds.push(token);
      const reason = this.stopReason(seq, token);
      if (reason) {
        seq.finishReason = reason;
        this.scheduler.finish(seq);
      }
      outputs.push({ seq, newToken: token, finished: reason !== null });
    }
    return outputs;
  }

  /** Runs requests to completion together, in mixed batches. */
  generate(requests: GenerationRequest[]): Sequence[] {
    const seqs = requests.map((r) => this.addRequest(r));
    while (seqs.some((s) => !s.isFinished)) this.step();
    return seqs;
  }

  private stopReason(seq: Sequence, token: number): FinishReason | null {
    const p = seq.params;
    const n = seq.outputIds.length;
    if (n >= p.minTokens) {
      if (!p.ignoreEos && this.eosTokenIds.has(token)) return 'stop';
      if (p.stopTokenIds.includes(token)) return 'stop';
    }
    if (n >= p.maxTokens) return 'length';
    if (seq.numTokens >= this.options.maxModelLen) return 'length';
    return null;
  }
}
