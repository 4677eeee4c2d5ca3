/**
 * Runs one scheduled step: builds the step plan, hands it to the backend, runs the forward pass and samples a
 * token for each sequence whose uncomputed tokens are all in this step. It changes no sequence: it returns
 * what the step produced, and the engine applies it.
 */

import type { EdgeSlots } from '../adapters/kinds/edge-slots.ts';
import type { Backend, KvCache, StepState, Tensor } from '../backends/types.ts';
import type { LoraBank, SamplingRow } from '../kernels/types.ts';
import type { DecoderModel } from '../model/forward.ts';
import { checkInjectedFault, type EngineFaults } from './faults.ts';
import type { BlockManager } from './kv/block-manager.ts';
import { processesLogits, processLogits } from './logits-processing.ts';
import { type TokenLogprobs, tokenLogprobs } from './logprobs.ts';
import { buildStepPlan } from './plan/step-plan.ts';
import type { ScheduledEntry } from './scheduler/scheduler.ts';

export interface SampledToken {
  entry: ScheduledEntry;
  token: number;
  /** When the sequence asked for logprobs. */
  logprobs?: TokenLogprobs;
  /** The raw logits row that chose the token, when the sequence asked for step logits. */
  logits?: Float32Array;
}

/** What one step produced: every entry's tokens are now in the KV cache; some sequences got a token. */
export interface StepResult {
  computed: ScheduledEntry[];
  sampled: SampledToken[];
  /** Prompt logits asked for (params.promptLogits): rows [positions.length, vocab] at those prompt positions. */
  promptLogits: { entry: ScheduledEntry; positions: number[]; logits: Float32Array }[];
  /** Prompt logprobs asked for (params.promptLogprobs): of the prompt tokens at `positions` (each ≥ 1). */
  promptLogprobs: { entry: ScheduledEntry; positions: number[]; logprobs: TokenLogprobs[] }[];
}

export class ModelRunner {
  private readonly step: StepState;

  constructor(
    readonly model: DecoderModel,
    readonly backend: Backend,
    readonly kv: KvCache,
    readonly blocks: BlockManager,
    readonly bank: LoraBank | null,
    private readonly faults?: EngineFaults,
    /** Slots' embedding / norm / lm_head modules (adapters/kinds/edge-slots.ts). */
    private readonly edges?: Pick<EdgeSlots, 'hooksFor'>,
  ) {
    this.step = backend.createStep();
  }

  /**
   * Computes the entries' tokens. When it throws, every sequence's random state is as before, so the step can
   * be re-run; the KV rows it wrote are rewritten by that re-run.
   */
  run(scheduled: ScheduledEntry[]): StepResult {
    const rngBefore = scheduled.map((e) => e.seq.rng.save());
    try {
      return this.compute(scheduled);
    } catch (e) {
      scheduled.forEach((entry, i) => {
        entry.seq.rng.restore(rngBefore[i]);
      });
      throw e;
    }
  }

  private compute(scheduled: ScheduledEntry[]): StepResult {
    if (scheduled.length === 0) return { computed: [], sampled: [], promptLogits: [], promptLogprobs: [] };
    checkInjectedFault(
      this.faults,
      scheduled.map((e) => e.seq.adapter),
    );
    const plan = buildStepPlan(scheduled, this.blocks);
    const B = this.backend;
    B.setStep(this.step, plan.inputs);
    const vocab = this.model.config.vocabSize;
    const hooks = this.edges?.hooksFor(this.step, plan.inputs) ?? null;
    const logits = this.model.forward(this.step, this.kv, this.bank, hooks);

    const promptLogits: StepResult['promptLogits'] = [];
    const promptLogprobs: StepResult['promptLogprobs'] = [];
    const sampledEntries: ScheduledEntry[] = [];
    const rowIndex: number[] = [];
    const rows: SamplingRow[] = [];
    plan.entries.forEach((e, i) => {
      const prompt = plan.promptRows[i];
      if (prompt.length > 0 && e.seq.params.promptLogprobs !== null) {
        promptLogprobs.push(this.promptTokenLogprobs(logits, vocab, e, prompt, e.seq.params.promptLogprobs));
      }
      if (prompt.length > 0 && e.seq.params.promptLogits) {
        // Prompt rows of one entry are consecutive logits rows.
        const first = prompt[0][0];
        promptLogits.push({
          entry: e,
          positions: prompt.map(([, position]) => position),
          logits: B.read(logits, first * vocab, prompt.length * vocab),
        });
      }
      const r = plan.sampleRow[i];
      if (r < 0) return;
      const p = e.seq.params;
      rows.push({
        temperature: p.temperature,
        topK: p.topK,
        topP: p.topP,
        uniform: p.temperature > 0 ? e.seq.rng.uniform() : 0,
      });
      rowIndex.push(r);
      sampledEntries.push(e);
    });
    // Logprobs and step logits are of the raw logits; the sampler may overwrite its rows, so read them first.
    const processed = sampledEntries.map((e) => processesLogits(e.seq.params));
    const raw = sampledEntries.map((e, i) =>
      e.seq.params.logprobs === null && !e.seq.params.stepLogits && !processed[i]
        ? null
        : B.read(logits, rowIndex[i] * vocab, vocab),
    );
    const tokens = processed.includes(true)
      ? this.sampleProcessed(logits, vocab, sampledEntries, rowIndex, rows, raw, processed)
      : B.sample(logits, vocab, Int32Array.from(rowIndex), rows);
    const sampled = sampledEntries.map((entry, i): SampledToken => {
      const out: SampledToken = { entry, token: tokens[i] };
      const row = raw[i];
      const k = entry.seq.params.logprobs;
      if (row && k !== null) out.logprobs = tokenLogprobs(row, 0, vocab, tokens[i], k);
      if (row && entry.seq.params.stepLogits) out.logits = row;
      return out;
    });
    return { computed: plan.entries, sampled, promptLogits, promptLogprobs };
  }

  /** Row at position p predicts the prompt token at p + 1; read one row at a time, so memory stays one row. */
  private promptTokenLogprobs(
    logits: Tensor,
    vocab: number,
    entry: ScheduledEntry,
    prompt: [number, number][],
    k: number,
  ): StepResult['promptLogprobs'][number] {
    const ids = entry.seq.promptIds;
    const positions: number[] = [];
    const logprobs: TokenLogprobs[] = [];
    for (const [row, position] of prompt) {
      if (position + 1 >= ids.length) continue;
      const raw = this.backend.read(logits, row * vocab, vocab);
      const token = ids[position + 1];
      let above = 0;
      for (let v = 0; v < vocab; v++) if (raw[v] > raw[token]) above++;
      positions.push(position + 1);
      logprobs.push({ ...tokenLogprobs(raw, 0, vocab, token, k), rank: above + 1 });
    }
    return { entry, positions, logprobs };
  }

  /**
   * Rows of sequences that change their logits (logits-processing.ts) are changed on the host and sampled from
   * an uploaded copy by the same sampler; the others are sampled where they are. Tokens come back in row order.
   */
  private sampleProcessed(
    logits: Tensor,
    vocab: number,
    entries: ScheduledEntry[],
    rowIndex: number[],
    rows: SamplingRow[],
    raw: (Float32Array | null)[],
    processed: boolean[],
  ): Int32Array {
    const B = this.backend;
    const plain = processed.flatMap((p, i) => (p ? [] : [i]));
    const changed = processed.flatMap((p, i) => (p ? [i] : []));
    const tokens = new Int32Array(rows.length);
    if (plain.length > 0) {
      const out = B.sample(
        logits,
        vocab,
        Int32Array.from(plain, (i) => rowIndex[i]),
        plain.map((i) => rows[i]),
      );
      plain.forEach((i, j) => {
        tokens[i] = out[j];
      });
    }
    const copy = new Float32Array(changed.length * vocab);
    changed.forEach((i, j) => {
      const row = copy.subarray(j * vocab, (j + 1) * vocab);
      row.set(raw[i] as Float32Array);
      const seq = entries[i].seq;
      processLogits(row, seq.params, seq.promptIds, seq.outputIds);
    });
    const uploaded = B.upload(copy);
    try {
      const out = B.sample(
        uploaded,
        vocab,
        Int32Array.from(changed, (_, j) => j),
        changed.map((i) => rows[i]),
      );
      changed.forEach((i, j) => {
        tokens[i] = out[j];
      });
    } finally {
      B.free(uploaded);
    }
    return tokens;
  }
}
