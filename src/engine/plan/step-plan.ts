/**
 * The step plan, built once per step from the schedule: rows grouped by adapter slot, each row's token,
 * position and KV cache row, the attention batch, which rows produce logits and what each logits row is
 * for. The backend gets its `inputs`; the model runner reads the rest to hand the outputs back.
 */
import type { StepInputs } from '../../backends/types.ts';
import type { BlockManager } from '../kv/block-manager.ts';
import type { ScheduledEntry } from '../scheduler/scheduler.ts';

export interface StepPlan {
  /** The scheduled entries in row order: sorted by adapter slot (stable), so a slot's rows are contiguous. */
  entries: ScheduledEntry[];
  inputs: StepInputs;
  /** Per entry: the logits row its next token is sampled from, or -1 (a prefill chunk that ends mid-prompt). */
  sampleRow: Int32Array;
  /** Per entry: (logits row, prompt position) pairs for the prompt logits or logprobs it asked for. */
  promptRows: [number, number][][];
}

export function buildStepPlan(scheduled: readonly ScheduledEntry[], blocks: BlockManager): StepPlan {
  const entries = [...scheduled].sort((a, b) => a.seq.adapterSlot - b.seq.adapterSlot);
  const T = entries.reduce((n, e) => n + e.numTokens, 0);
  const tokens = new Int32Array(T);
  const positions = new Int32Array(T);
  const slotMapping = new Int32Array(T);
  const rowSlot = new Int32Array(T);
  const numSeqs = entries.length;
  const qStart = new Int32Array(numSeqs + 1);
  const kvLen = new Int32Array(numSeqs);
  const blockTableStart = new Int32Array(numSeqs);
  const tables: number[] = [];
  const logitRows: number[] = [];
  const sampleRow = new Int32Array(numSeqs);
  const promptRows: [number, number][][] = [];
  let t = 0;
  entries.forEach((e, i) => {
    const seq = e.seq;
    qStart[i] = t;
    blockTableStart[i] = tables.length;
    for (const b of seq.blockTable) tables.push(b);
    const end = seq.numComputed + e.numTokens;
    kvLen[i] = end;
    const prompt: [number, number][] = [];
    for (let pos = seq.numComputed; pos < end; pos++, t++) {
      tokens[t] = seq.tokenAt(pos);
      positions[t] = pos;
      slotMapping[t] = blocks.slotOf(seq.blockTable, pos);
      rowSlot[t] = seq.adapterSlot;
      if ((seq.params.promptLogits || seq.params.promptLogprobs !== null) && pos < seq.promptIds.length) {
        prompt.push([logitRows.length, pos]);
        logitRows.push(t);
      }
    }
    promptRows.push(prompt);
    if (end < seq.numTokens) sampleRow[i] = -1;
    else {
      // The last row yields the next token; it may already be a prompt logits row.
      const last = prompt.at(-1);
      if (last && last[1] === end - 1) sampleRow[i] = last[0];
      else {
        sampleRow[i] = logitRows.length;
        logitRows.push(t - 1);
      }
    }
  });
  qStart[numSeqs] = t;
  return {
    entries,
    inputs: {
      numTokens: T,
      tokens,
      positions,
      slotMapping,
      rowSlot,
      attention: { qStart, kvLen, blockTables: Int32Array.from(tables), blockTableStart, numSeqs },
      logitRows: Int32Array.from(logitRows),
    },
    sampleRow,
    promptRows,
  };
}
