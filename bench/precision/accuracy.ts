/**
 * Runs the oracle cases through an engine (one batch: the kernels are batch invariant) and compares each case
 * with a reference: the PEFT oracle, or another engine run of the same model.
 */
import type { LLMEngine } from '../../src/engine/llm-engine.ts';
import type { OracleSet } from './oracle-set.ts';

/** What a run (or the oracle) gives for one case. */
export interface CaseRun {
  tokens: number[];
  /** Top-1 minus top-2 logit at each greedy step; null when not recorded. */
  margins: number[] | null;
  /** Logits at the last prompt position [vocab]. */
  lastLogits: Float32Array;
}

export interface CaseResult {
  id: string;
  maxAbsDiff: number;
  identical: boolean;
  /** First step whose token differs from the reference's; null when all agree. */
  firstDivergence: number | null;
  /** The reference's top-2 margin at that step: a divergence there is a near-tie flipped. */
  marginAtDivergence: number | null;
  /**
   * Largest |this run's top-2 margin − the reference's| over the steps before any divergence: how far the
   * setting moves the gap a greedy choice depends on (null when this run's margins were not recorded).
   */
  marginDrift: number | null;
}

export function oracleRuns(set: OracleSet): Map<string, CaseRun> {
  return new Map(
    set.cases.map((c) => [
      c.id,
      { tokens: c.greedy_tokens, margins: c.greedy_margins, lastLogits: set.logits.get(c.id) as Float32Array },
    ]),
  );
}

/** All cases in one generate() call, greedy with EOS ignored, as the oracle ran them; margins at every step. */
export function runCases(engine: LLMEngine, set: OracleSet): Map<string, CaseRun> {
  const vocab = engine.config.vocabSize;
  const seqs = engine.generate(
    set.cases.map((c) => ({
      promptIds: c.prompt_ids,
      adapter: c.adapter,
      params: {
        maxTokens: c.greedy_tokens.length,
        temperature: 0,
        ignoreEos: true,
        promptLogits: true,
        stepLogits: true,
      },
    })),
  );
  const runs = new Map<string, CaseRun>();
  for (const [i, seq] of seqs.entries()) {
    const n = set.cases[i].prompt_ids.length;
    runs.set(set.cases[i].id, {
      tokens: [...seq.outputIds],
      margins: seq.stepLogits.map(topTwoMargin),
      lastLogits: (seq.promptLogits as Float32Array).slice((n - 1) * vocab, n * vocab),
    });
  }
  return runs;
}

export function compareRuns(runs: Map<string, CaseRun>, reference: Map<string, CaseRun>): CaseResult[] {
  return [...reference.entries()].map(([id, want]) => {
    const got = runs.get(id) as CaseRun;
    let maxAbsDiff = 0;
    for (let v = 0; v < want.lastLogits.length; v++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got.lastLogits[v] - want.lastLogits[v]));
    }
    const step = want.tokens.findIndex((t, i) => got.tokens[i] !== t);
    const firstDivergence = step < 0 ? null : step;
    let marginDrift: number | null = null;
    if (got.margins && want.margins) {
      marginDrift = 0;
      for (let i = 0; i < (firstDivergence ?? want.tokens.length); i++) {
        marginDrift = Math.max(marginDrift, Math.abs(got.margins[i] - want.margins[i]));
      }
    }
    return {
      id,
      maxAbsDiff,
      identical: firstDivergence === null,
      firstDivergence,
      marginAtDivergence: firstDivergence === null ? null : (want.margins?.[firstDivergence] ?? null),
      marginDrift,
    };
  });
}

export function topTwoMargin(row: Float32Array): number {
  let first = -Infinity;
  let second = -Infinity;
  for (const x of row) {
    if (x > first) {
      second = first;
      first = x;
    } else if (x > second) second = x;
  }
  return first - second;
}
