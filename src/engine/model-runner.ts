/**
 * Runs one scheduled step: lays the batch out (tokens grouped by adapter slot into segments), runs the
 * forward pass, and samples a token for each sequence whose uncomputed tokens are all in this step.
 */
import type { AttentionBatch, Kernels, LoraBank, SamplingRow } from '../kernels/types.ts';
import type { DecoderModel, ForwardBatch, KvCacheLayers, LoraLayout } from '../model/forward.ts';
import { checkInjectedFault, type EngineFaults } from './faults.ts';
import type { BlockManager } from './kv/block-manager.ts';
import { tokenLogprobs } from './logprobs.ts';
import type { ScheduledEntry } from './scheduler/scheduler.ts';

export interface SampledToken {
  entry: ScheduledEntry;
  token: number;
}

export class ModelRunner {
  constructor(
    readonly model: DecoderModel,
    readonly kernels: Kernels,
    readonly kv: KvCacheLayers,
    readonly blocks: BlockManager,
    readonly bank: LoraBank | null,
    private readonly faults?: EngineFaults,
  ) {}

  /**
   * Computes the entries' tokens (advancing numComputed) and returns the sampled tokens. All or nothing: when
   * it throws, every sequence is as before (numComputed, random state), so the step can be re-run; the KV rows
   * it wrote are rewritten by that re-run.
   */
  run(scheduled: ScheduledEntry[]): SampledToken[] {
    const before = scheduled.map((e) => ({ computed: e.seq.numComputed, rng: e.seq.rng.save() }));
    try {
      return this.compute(scheduled);
    } catch (e) {
      scheduled.forEach((entry, i) => {
        entry.seq.numComputed = before[i].computed;
        entry.seq.rng.restore(before[i].rng);
      });
      throw e;
    }
  }

  private compute(scheduled: ScheduledEntry[]): SampledToken[] {
    if (scheduled.length === 0) return [];
    checkInjectedFault(
      this.faults,
      scheduled.map((e) => e.seq.adapter),
    );
    // Segments of one adapter must be contiguous rows; sorting by slot is stable, so order within a slot holds.
    const entries = [...scheduled].sort((a, b) => a.seq.adapterSlot - b.seq.adapterSlot);
    const batch = this.layout(entries);
    const vocab = this.model.config.vocabSize;
    const logits = this.model.forward(batch.forward, this.kv, this.bank);

    const sampledEntries: ScheduledEntry[] = [];
    const rows: SamplingRow[] = [];
    const sampleRows = batch.sampleRow.filter((r) => r >= 0);
    // Without prompt logits the sampled rows are exactly the logit rows, in order: sample in place.
    const inPlace = sampleRows.length * vocab === logits.length;
    const sampleLogits = inPlace ? logits : new Float32Array(sampleRows.length * vocab);
    entries.forEach((e, i) => {
      const seq = e.seq;
      for (const [row, position] of batch.promptRows[i]) {
        seq.promptLogits ??= new Float32Array(seq.promptIds.length * vocab);
        seq.promptLogits.set(logits.subarray(row * vocab, (row + 1) * vocab), position * vocab);
      }
      seq.numComputed += e.numTokens;
      const r = batch.sampleRow[i];
      if (r < 0) return;
      if (!inPlace) sampleLogits.set(logits.subarray(r * vocab, (r + 1) * vocab), rows.length * vocab);
      const p = seq.params;
      rows.push({
        temperature: p.temperature,
        topK: p.topK,
        topP: p.topP,
        uniform: p.temperature > 0 ? seq.rng.uniform() : 0,
      });
      sampledEntries.push(e);
    });
    // Logprobs are of the raw logits; the sampler may work on its rows in place, so keep a copy of those asked for.
    const rawRows = sampledEntries.map((e, i) =>
      e.seq.params.logprobs === null ? null : sampleLogits.slice(i * vocab, (i + 1) * vocab),
    );
    const tokens = new Int32Array(rows.length);
    this.kernels.sample(sampleLogits, vocab, rows, tokens);
    sampledEntries.forEach((e, i) => {
      const raw = rawRows[i];
      const k = e.seq.params.logprobs;
      if (raw && k !== null) e.seq.outputLogprobs.push(tokenLogprobs(raw, 0, vocab, tokens[i], k));
    });
    return sampledEntries.map((entry, i) => ({ entry, token: tokens[i] }));
  }

  private layout(entries: ScheduledEntry[]) {
    const T = entries.reduce((n, e) => n + e.numTokens, 0);
    const tokens = new Int32Array(T);
    const positions = new Int32Array(T);
    const slotMapping = new Int32Array(T);
    const numSeqs = entries.length;
    const qStart = new Int32Array(numSeqs + 1);
    const kvLen = new Int32Array(numSeqs);
    const blockTableStart = new Int32Array(numSeqs);
    const tables: number[] = [];
    const logitRows: number[] = [];
    const sampleRow: number[] = []; // per entry: index into logitRows, or -1
    const promptRows: [number, number][][] = []; // per entry: (logit row index, prompt position)
    let t = 0;
    entries.forEach((e, i) => {
      const seq = e.seq;
      qStart[i] = t;
      blockTableStart[i] = tables.length;
      tables.push(...seq.blockTable);
      const end = seq.numComputed + e.numTokens;
      kvLen[i] = end;
      const wantPrompt = seq.params.promptLogits;
      const prompt: [number, number][] = [];
      for (let pos = seq.numComputed; pos < end; pos++, t++) {
        tokens[t] = seq.tokenAt(pos);
        positions[t] = pos;
        slotMapping[t] = this.blocks.slotOf(seq.blockTable, pos);
        if (wantPrompt && pos < seq.promptIds.length) {
          prompt.push([logitRows.length, pos]);
          logitRows.push(t);
        }
      }
      promptRows.push(prompt);
      if (end === seq.numTokens) {
        // The last row yields the next token; it may already be a prompt logit row.
        const last = prompt.length > 0 && prompt[prompt.length - 1][1] === end - 1 ? prompt[prompt.length - 1][0] : -1;
        if (last >= 0) sampleRow.push(last);
        else {
          sampleRow.push(logitRows.length);
          logitRows.push(t - 1);
        }
      } else {
        sampleRow.push(-1);
      }
    });
    qStart[numSeqs] = t;
    const attention: AttentionBatch = {
      qStart,
      kvLen,
      blockTables: Int32Array.from(tables),
      blockTableStart,
      numSeqs,
    };
    const forward: ForwardBatch = {
      numTokens: T,
      tokens,
      positions,
      slotMapping,
      attention,
      lora: this.loraLayout(entries, T),
      logitRows: Int32Array.from(logitRows),
    };
    return { forward, sampleRow, promptRows };
  }

  private loraLayout(entries: ScheduledEntry[], numTokens: number): LoraLayout {
    if (!this.bank || entries.every((e) => e.seq.adapterSlot < 0)) return { mode: 'none' };
    if (entries.every((e) => e.numTokens === 1)) {
      // Decode-only step: one slot per token (BGMV).
      return { mode: 'bgmv', tokenSlot: Int32Array.from(entries, (e) => e.seq.adapterSlot) };
    }
    const segStart: number[] = [0];
    const segSlot: number[] = [];
    let t = 0;
    for (const e of entries) {
      const slot = e.seq.adapterSlot;
      if (segSlot.length === 0 || segSlot[segSlot.length - 1] !== slot) {
        if (segSlot.length > 0) segStart.push(t);
        segSlot.push(slot);
      }
      t += e.numTokens;
    }
    segStart.push(numTokens);
    return {
      mode: 'sgmv',
      segStart: Int32Array.from(segStart),
      segSlot: Int32Array.from(segSlot),
      numSegments: segSlot.length,
    };
  }
}
