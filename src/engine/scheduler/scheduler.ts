/**
 * Continuous batching. Each step: running sequences first (decodes, then unfinished prefill chunks), then
 * waiting ones, within a token budget (chunked prefill), a cap on running sequences, the KV blocks left and
 * the adapter slots left. With a step-time target the engine also caps the prefill tokens of a step
 * (step-time-model.ts): decodes always go, prompts take what keeps the step near the target. When blocks run out, the newest running sequence is preempted (its blocks freed,
 * recomputed later from its tokens).
 * Waiting sequences are admitted preempted-first, then round-robin across adapters in arrival order, so a
 * busy adapter cannot starve the others; one whose adapter is still loading is passed over.
 * No I/O and no arithmetic: the engine hands it a BlockManager and an adapter-slot table.
 */
import type { BlockManager } from '../kv/block-manager.ts';
import type { Sequence } from '../sequence.ts';

export interface SchedulerConfig {
  maxBatchTokens: number;
  maxRunningSeqs: number;
}

/** What the scheduler needs from the adapter tiers, by adapter version key: residency and kernel slots. */
export interface SlotProvider {
  /** The adapter's weights are in memory, so a slot can be filled now (a query; false: not resident). */
  isReady(key: string): boolean;
  /** Pins a slot holding the adapter; null when every slot is pinned by other adapters. */
  acquireSlot(key: string): number | null;
  releaseSlot(key: string): void;
}

export interface ScheduledEntry {
  seq: Sequence;
  numTokens: number; // tokens of this sequence computed in this step
}

export interface Schedule {
  entries: ScheduledEntry[];
  preempted: Sequence[];
  /** Adapters whose slot could not be filled (the copy threw); their sequences were left waiting. */
  faulted: { key: string; error: unknown }[];
  /** Adapters of waiting sequences passed over because their weights are not resident: the engine loads them. */
  awaitingLoad: string[];
}

export class Scheduler {
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];

  constructor(
    readonly config: SchedulerConfig,
    private readonly blocks: BlockManager,
    private readonly slots: SlotProvider,
  ) {}

  add(seq: Sequence) {
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /**
   * `prefillAllowance(decodeRows)`: at most this many prefill tokens (prompt chunks, recomputation) this step,
   * given the decode rows it holds; unlimited without one.
   */
  schedule(prefillAllowance?: (decodeRows: number) => number): Schedule {
    const entries: ScheduledEntry[] = [];
    const preempted: Sequence[] = [];
    const faulted: Schedule['faulted'] = [];
    const awaitingLoad = new Set<string>();
    let budget = this.config.maxBatchTokens;
    const decodeRows = this.running.filter((s) => pendingOf(s) === 1).length;
    let prefillLeft = prefillAllowance ? prefillAllowance(decodeRows) : Number.POSITIVE_INFINITY;

    // Decodes before prefill chunks, so a long prompt never delays the running sequences' next token.
    const order = [...this.running].sort((a, b) => pendingOf(a) - pendingOf(b));
    for (const seq of order) {
      if (seq.status !== 'running') continue; // preempted below
      if (budget <= 0) break;
      const decode = pendingOf(seq) === 1;
      if (!decode && prefillLeft <= 0) continue;
      const take = Math.min(pendingOf(seq), budget, decode ? 1 : prefillLeft);
      while (!this.blocks.canGrow(seq.blockTable, seq.numComputed + take)) {
        const victim = this.newestRunning(seq, entries);
        if (!victim) break;
        this.preempt(victim);
        preempted.push(victim);
        if (victim === seq) break;
      }
      if (seq.status !== 'running') continue;
      if (!this.blocks.grow(seq.blockTable, seq.numComputed + take)) continue;
      entries.push({ seq, numTokens: take });
      budget -= take;
      if (!decode) prefillLeft -= take;
    }

    // Once a ready sequence finds every slot pinned, no later adapter sequence is admitted this step, so
    // the pinned slots drain and it gets one next (base sequences need no slot and still go).
    let slotBlocked = false;
    for (const seq of admissionOrder(this.waiting)) {
      if (budget <= 0 || prefillLeft <= 0 || this.running.length >= this.config.maxRunningSeqs) break;
      const key = seq.adapterKey;
      if (key !== null && !this.slots.isReady(key)) {
        awaitingLoad.add(key);
        continue;
      }
      if (key !== null && (slotBlocked || faulted.some((f) => f.key === key))) continue;
      const take = Math.min(pendingOf(seq), budget, prefillLeft);
      if (!this.blocks.canGrow(seq.blockTable, seq.numComputed + take)) break;
      let slot = -1;
      if (key !== null) {
        let got: number | null;
        try {
          got = this.slots.acquireSlot(key);
        } catch (error) {
          faulted.push({ key, error });
          continue;
        }
        if (got === null) {
          slotBlocked = true;
          continue;
        }
        slot = got;
      }
      this.blocks.grow(seq.blockTable, seq.numComputed + take);
      this.waiting.splice(this.waiting.indexOf(seq), 1);
      seq.status = 'running';
      seq.adapterSlot = slot;
      this.running.push(seq);
      entries.push({ seq, numTokens: take });
      budget -= take;
      prefillLeft -= take;
    }
    return { entries, preempted, faulted, awaitingLoad: [...awaitingLoad] };
  }

  /** Removes a finished or aborted sequence and frees what it held. */
  finish(seq: Sequence) {
    const r = this.running.indexOf(seq);
    if (r >= 0) {
      this.running.splice(r, 1);
      this.releaseResources(seq);
    } else {
      const w = this.waiting.indexOf(seq);
      if (w >= 0) this.waiting.splice(w, 1);
    }
    seq.status = 'finished';
  }

  private releaseResources(seq: Sequence) {
    this.blocks.release(seq.blockTable);
    if (seq.adapterKey !== null && seq.adapterSlot >= 0) this.slots.releaseSlot(seq.adapterKey);
    seq.adapterSlot = -1;
  }

  private preempt(seq: Sequence) {
    this.running.splice(this.running.indexOf(seq), 1);
    this.releaseResources(seq);
    seq.numComputed = 0;
    seq.status = 'waiting';
    this.waiting.unshift(seq);
  }

  /** The most recently admitted running sequence not yet scheduled in this step (may be `self`). */
  private newestRunning(self: Sequence, scheduled: ScheduledEntry[]): Sequence | null {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const s = this.running[i];
      if (s === self || !scheduled.some((e) => e.seq === s)) return s;
    }
    return null;
  }
}

/**
 * Preempted sequences first (they already produced tokens), then one sequence per adapter per round, adapters
 * taken in the order their oldest waiting sequence arrived.
 */
function admissionOrder(waiting: readonly Sequence[]): Sequence[] {
  const order: Sequence[] = [];
  const groups = new Map<string | null, Sequence[]>();
  for (const seq of waiting) {
    if (seq.outputIds.length > 0) {
      order.push(seq);
      continue;
    }
    const group = groups.get(seq.adapterKey);
    if (group) group.push(seq);
    else groups.set(seq.adapterKey, [seq]);
  }
  const queues = [...groups.values()];
  for (let round = 0; queues.length > 0; round++) {
    for (let q = 0; q < queues.length; ) {
      if (round < queues[q].length) {
        order.push(queues[q][round]);
        q++;
      } else queues.splice(q, 1);
    }
  }
  return order;
}

function pendingOf(seq: Sequence): number {
  return seq.numTokens - seq.numComputed;
}
