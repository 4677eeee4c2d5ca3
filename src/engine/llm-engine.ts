/**
 * The engine: add requests, step, collect tokens. `step()` = schedule → run → postprocess (nano-vllm's
 * shape). This class is synchronous and single-threaded; the server runs it inside a worker thread.
 */
import { AdapterManager } from '../adapters/cache/adapter-manager.ts';
import { type AdapterChoice, compositionLabel } from '../adapters/compose.ts';
import { EdgeSlots } from '../adapters/kinds/edge-slots.ts';
import type { AdapterLoader } from '../adapters/loader/adapter-loader.ts';
import type { AdapterSummary } from '../adapters/loader/load-packed.ts';
import type { Backend, KvDtype } from '../backends/types.ts';
import type { LoraDtype, PackedAdapter } from '../kernels/types.ts';
import type { ModelConfig } from '../model/config.ts';
import { DecoderModel } from '../model/forward.ts';
import { fuseWeights } from '../model/fused-weights.ts';
import { numModules } from '../model/modules.ts';
import type { LoadedModel } from '../model/weights.ts';
import { createError } from '../observability/errors.ts';
import type { ServingStats } from '../observability/serving-stats.ts';
import type { EngineFaults } from './faults.ts';
import { BlockManager } from './kv/block-manager.ts';
import { ModelRunner, type StepResult } from './model-runner.ts';
import { type SamplingParams, samplingParams } from './sampling-params.ts';
import { type ScheduledEntry, Scheduler } from './scheduler/scheduler.ts';
import { StepTimeModel } from './scheduler/step-time-model.ts';
import { type FinishReason, Sequence } from './sequence.ts';

export interface EngineOptions {
  /** Owns the weights, the KV cache, the adapter slots and the activations, and runs the ops. */
  backend: Backend;
  /** Adapter slots a batch can mix (vLLM's max_loras, NIM's max GPU LoRAs). */
  maxLoras: number;
  /** Adapters kept packed in host memory (vLLM's max_cpu_loras, NIM's max CPU LoRAs); at least maxLoras. */
  maxCpuLoras?: number;
  /** Bytes of packed adapters the host tier keeps (--max-cpu-lora-bytes); unset: counted in adapters only. */
  maxCpuLoraBytes?: number;
  /** Where adapter loads run; without one, only adapters handed over with addAdapter() are served. */
  loader?: AdapterLoader;
  /** Waiting requests beyond this are refused (429) instead of queued. */
  maxWaitingRequests?: number;
  blockSize: number;
  /** KV cache size, in tokens (rounded up to whole blocks). */
  kvCacheTokens: number;
  maxBatchTokens: number;
  maxRunningSeqs: number;
  /**
   * Latency-aware chunked prefill: steps with decodes take only the prompt tokens that keep them near this
   * many milliseconds (a fitted step-time model, step-time-model.ts); 0 or unset: --max-batch-tokens alone.
   */
  stepTimeTargetMs?: number;
  /** Longest prompt + output a sequence may reach. */
  maxModelLen: number;
  /** How adapter slots store LoRA matrices (`--lora-dtype`); 'auto' (the default): see loraDtypeFor. */
  loraDtype?: LoraDtype | 'auto';
  /** How the KV cache stores keys and values (`--kv-cache-dtype`); 'auto' (the default) is f32. */
  kvCacheDtype?: KvDtype | 'auto';
  /** Largest total rank of a request's adapter combination (--max-lora-rank; default 64). */
  maxLoraRank?: number;
  /** Test plumbing only: faults to inject (see faults.ts). */
  faults?: EngineFaults;
}

/**
 * The slots' storage for a model: the option when given; 'auto' never rounds adapters to a format coarser
 * than the model's own: bf16 for a bf16 checkpoint (what vLLM does; decode reads half the bytes), f32 for
 * f32 and f16 checkpoints (f16 is finer than bf16).
 */
export function loraDtypeFor(config: ModelConfig, option: LoraDtype | 'auto' = 'auto'): LoraDtype {
  if (option !== 'auto') return option;
  return config.dtype === 'bf16' ? 'bf16' : 'f32';
}

export function kvDtypeFor(option: KvDtype | 'auto' = 'auto'): KvDtype {
  return option === 'auto' ? 'f32' : option;
}

/** Host-cache entries when not configured (vLLM's max_cpu_loras defaults to max_loras; adapters are small). */
export const DEFAULT_MAX_CPU_LORAS = 64;

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, 'backend'> = {
  maxLoras: 32,
  blockSize: 16,
  kvCacheTokens: 32768,
  maxBatchTokens: 512,
  maxRunningSeqs: 128,
  maxModelLen: 4096,
};

export interface GenerationRequest {
  promptIds: number[];
  /** The base (null), an adapter's name, or a weighted combination of adapters (compose.ts). */
  adapter: AdapterChoice;
  params?: Partial<SamplingParams>;
}

/** What the scheduler and the adapter tiers hold now (the shape the metrics read: observability declares it). */
export type EngineStats = ServingStats;

export interface StepOutput {
  seq: Sequence;
  newToken: number | null;
  finished: boolean;
}

export class LLMEngine {
  readonly model: DecoderModel;
  readonly scheduler: Scheduler;
  readonly blocks: BlockManager;
  readonly adapters: AdapterManager;
  readonly runner: ModelRunner;
  private nextId = 0;
  /** Sequences given up before running (their adapter failed to load), reported by the next step(). */
  private readonly failed: Sequence[] = [];
  readonly eosTokenIds: Set<number>;

  readonly config: ModelConfig;

  /** The engine packs the model's weights for its kernels; drop `loaded` afterwards to free the originals. */
  constructor(
    loaded: LoadedModel,
    readonly options: EngineOptions,
  ) {
    const { config } = loaded;
    this.config = config;
    const backend = options.backend;
    this.model = new DecoderModel(config, fuseWeights(config, loaded.weights, backend), backend, options.blockSize);
    const numBlocks = Math.ceil(options.kvCacheTokens / options.blockSize);
    this.blocks = new BlockManager(numBlocks, options.blockSize);
    const kv = backend.createKvCache({
      numLayers: config.numLayers,
      numBlocks,
      blockSize: options.blockSize,
      rowWidth: config.numKvHeads * config.headDim,
      dtype: kvDtypeFor(options.kvCacheDtype),
    });
    const edges = new EdgeSlots(backend, config); // embedding / norm / lm_head adapters, per slot
    this.adapters = new AdapterManager({
      slotContents: edges,
      backend,
      numModules: numModules(config),
      loraDtype: loraDtypeFor(config, options.loraDtype),
      maxLoras: options.maxLoras,
      maxCpuLoras: options.maxCpuLoras ?? Math.max(options.maxLoras, DEFAULT_MAX_CPU_LORAS),
      maxCpuLoraBytes: options.maxCpuLoraBytes,
      loader: options.loader ?? null,
      maxLoraRank: options.maxLoraRank,
    });
    this.adapters.events.failed = (key, error) => {
      for (const seq of [...this.scheduler.waiting]) {
        if (seq.adapterKey !== key) continue;
        seq.error = error;
        this.finish(seq, 'abort');
        this.failed.push(seq);
      }
    };
    this.runner = new ModelRunner(
      this.model,
      backend,
      kv,
      this.blocks,
      this.adapters.slots.bank,
      options.faults,
      edges,
    );
    this.scheduler = new Scheduler(
      { maxBatchTokens: options.maxBatchTokens, maxRunningSeqs: options.maxRunningSeqs },
      this.blocks,
      this.adapters,
    );
    this.eosTokenIds = new Set(config.eosTokenIds);
    const targetMs = options.stepTimeTargetMs ?? 0;
    if (targetMs > 0) this.prefillAllowance = this.latencyAware(targetMs, options.maxBatchTokens);
  }

  /**
   * The prefill tokens a step may take (see EngineOptions.stepTimeTargetMs); undefined: no cap. Steps with
   * no decodes are not capped: nobody waits on them.
   */
  private prefillAllowance: ((decodeRows: number) => number) | undefined;
  private readonly stepTimes = new StepTimeModel();

  private latencyAware(targetMs: number, maxBatchTokens: number) {
    const minChunk = Math.min(maxBatchTokens, 16);
    return (decodeRows: number) =>
      decodeRows === 0
        ? maxBatchTokens
        : this.stepTimes.prefillTokens({ targetMs, decodeRows, maxBatchTokens, minChunk });
  }

  /** Serves an adapter already parsed, validated and packed (kept in memory; replaces one of that name). */
  addAdapter(name: string, packed: PackedAdapter, summary?: AdapterSummary) {
    this.adapters.addResident(name, packed, summary);
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  adapterNames(): string[] {
    return this.adapters.names();
  }

  addRequest(req: GenerationRequest): Sequence {
    const maxWaiting = this.options.maxWaitingRequests;
    if (maxWaiting !== undefined && this.scheduler.waiting.length >= maxWaiting) {
      throw createError('SERVER_OVERLOADED', { waiting: this.scheduler.waiting.length, retryAfter: 1 });
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
    const { adapter } = req;
    const key =
      adapter === null
        ? null
        : typeof adapter === 'string'
          ? this.adapters.resolve(adapter)
          : this.adapters.resolveComposition(adapter);
    const label = adapter === null || typeof adapter === 'string' ? adapter : compositionLabel(adapter);
    const seq = new Sequence(this.nextId++, req.promptIds, label, params, key);
    if (key !== null) this.adapters.retain(key);
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
      adapterCache: { ...this.adapters.stats(), ...this.adapters.hostBytes() },
    };
  }

  abort(seq: Sequence) {
    if (seq.isFinished) return;
    this.finish(seq, 'abort');
  }

  hasUnfinished(): boolean {
    return this.scheduler.hasWork || this.failed.length > 0;
  }

  /**
   * A step would do something now (false: idle, or every waiting sequence waits for an adapter load). Requests
   * the loads waiting sequences need (an adapter evicted from memory since its request came is loaded again).
   */
  canStep(): boolean {
    if (this.failed.length > 0 || this.scheduler.running.length > 0) return true;
    // A request may fail right here (a combination refused once its last part has loaded): it leaves `waiting`
    // for `failed`, and the step that reports it must run, or the loop would sleep with no wake-up to come.
    for (const s of [...this.scheduler.waiting]) if (s.adapterKey !== null) this.adapters.requestLoad(s.adapterKey);
    if (this.failed.length > 0) return true;
    return this.scheduler.waiting.some((s) => s.adapterKey === null || this.adapters.isReady(s.adapterKey));
  }

  /**
   * Sequences whose adapter failed (to load, or in this step's work) come out finished, with `seq.error` set
   * and no token. Throws only for a fault no adapter can be blamed for (the base rows' work threw): the
   * engine cannot go on.
   */
  step(): StepOutput[] {
    const { entries, faulted, awaitingLoad } = this.scheduler.schedule(this.prefillAllowance);
    for (const f of faulted) this.failAdapter(f.key, f.error);
    for (const key of awaitingLoad) this.adapters.requestLoad(key);
    const started = performance.now();
    const results = this.runContained(entries);
    const tokens = entries.reduce((n, e) => n + e.numTokens, 0);
    this.stepTimes.observe(tokens, performance.now() - started);
    const outputs: StepOutput[] = this.failed.splice(0).map((seq) => ({ seq, newToken: null, finished: true }));
    for (const result of results) this.commit(result);
    for (const { entry, token, logprobs, logits } of results.flatMap((r) => r.sampled)) {
      const seq = entry.seq;
      if (seq.isFinished) continue; // failed with its adapter during this step
      seq.outputIds.push(token);
      if (logprobs) seq.outputLogprobs.push(logprobs);
      if (logits) seq.stepLogits.push(logits);
      const reason = this.stopReason(seq, token);
      if (reason) this.finish(seq, reason);
      outputs.push({ seq, newToken: token, finished: reason !== null });
    }
    return outputs;
  }

  /** What a step computed is now in the KV cache; prompt logits asked for are kept. */
  private commit(result: StepResult) {
    const vocab = this.config.vocabSize;
    for (const e of result.computed) e.seq.numComputed += e.numTokens;
    for (const { entry, positions, logits } of result.promptLogits) {
      const seq = entry.seq;
      seq.promptLogits ??= new Float32Array(seq.promptIds.length * vocab);
      positions.forEach((position, i) => {
        seq.promptLogits?.set(logits.subarray(i * vocab, (i + 1) * vocab), position * vocab);
      });
    }
    for (const { entry, positions, logprobs } of result.promptLogprobs) {
      const seq = entry.seq;
      seq.promptLogprobs ??= new Array(seq.promptIds.length).fill(null);
      const all = seq.promptLogprobs;
      positions.forEach((position, i) => {
        all[position] = logprobs[i];
      });
    }
  }

  /**
   * Runs the batch; when it throws, runs it again one adapter group at a time (a failed run commits
   * nothing) to find the groups at fault: their adapters are disabled and their sequences failed, the others
   * get their tokens. The base group throwing is rethrown.
   */
  private runContained(entries: ScheduledEntry[]): StepResult[] {
    if (entries.length === 0) return [];
    try {
      return [this.runner.run(entries)];
    } catch (error) {
      const groups = new Map<string | null, ScheduledEntry[]>();
      for (const e of entries) {
        const group = groups.get(e.seq.adapterKey);
        if (group) group.push(e);
        else groups.set(e.seq.adapterKey, [e]);
      }
      if (groups.size === 1 && groups.has(null)) throw error;
      const results: StepResult[] = [];
      for (const [key, group] of groups) {
        try {
          results.push(this.runner.run(group));
        } catch (groupError) {
          if (key === null) throw groupError;
          this.failAdapter(key, groupError);
        }
      }
      return results;
    }
  }

  /** An adapter's work threw: its sequences (running or waiting) fail and its version is disabled. */
  failAdapter(key: string, cause: unknown) {
    const name = key.slice(0, key.lastIndexOf('@'));
    const reason = cause instanceof Error ? cause.message : String(cause);
    const error = createError('ADAPTER_BROKEN', { name, reason }, { param: 'model', cause });
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) {
      if (seq.adapterKey !== key) continue;
      seq.error = error;
      this.finish(seq, 'abort');
      this.failed.push(seq);
    }
    this.adapters.markBroken(key, error);
  }

  /** Runs requests to completion together, in mixed batches; their adapters must be resident (addAdapter). */
  generate(requests: GenerationRequest[]): Sequence[] {
    const seqs = requests.map((r) => this.addRequest(r));
    while (seqs.some((s) => !s.isFinished)) {
      if (!this.canStep()) throw new Error('generate() waits for adapter loads; use the async engine to serve them');
      this.step();
    }
    return seqs;
  }

  private finish(seq: Sequence, reason: FinishReason) {
    seq.finishReason = reason;
    this.scheduler.finish(seq);
    if (seq.adapterKey !== null) this.adapters.release(seq.adapterKey);
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
