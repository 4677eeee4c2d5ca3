/**
 * Pure comparisons of two servers' top-k distributions at the same positions (token id → logprob maps,
 * most likely first), and of a greedy path: where the second server's argmax first leaves the first's tokens.
 *
 *   positionDiff(llama, loraplex)  → the |Δ logprob| of every token both report, top-1 agreement, margins
 *   summarize(diffs)               → max / median / p99 of |Δ| and top-1 agreement over many positions
 */
import type { TopLogprobs } from './clients.ts';

export interface PositionDiff {
  /** |Δ logprob| of each token in both top-k sets. */
  deltas: number[];
  /** Tokens in both sets / k (the first's size). */
  overlap: number;
  top1Agrees: boolean;
  /** The first server's top-1 − top-2 logprob (its confidence in its greedy pick). */
  margin: number;
  /** The second server's top-1 − top-2. */
  otherMargin: number;
  top1: number;
  otherTop1: number;
}

function argmaxAndMargin(top: TopLogprobs): { id: number; margin: number } {
  let best = -1;
  let first = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  for (const [id, lp] of top) {
    if (lp > first || (lp === first && id < best)) {
      second = first;
      first = lp;
      best = id;
    } else if (lp > second) second = lp;
  }
  return { id: best, margin: first - second };
}

export function positionDiff(reference: TopLogprobs, other: TopLogprobs): PositionDiff {
  const deltas: number[] = [];
  for (const [id, lp] of reference) {
    const o = other.get(id);
    if (o !== undefined) deltas.push(Math.abs(lp - o));
  }
  const a = argmaxAndMargin(reference);
  const b = argmaxAndMargin(other);
  return {
    deltas,
    overlap: reference.size ? deltas.length / reference.size : 0,
    top1Agrees: a.id === b.id,
    margin: a.margin,
    otherMargin: b.margin,
    top1: a.id,
    otherTop1: b.id,
  };
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export interface LogitSummary {
  positions: number;
  /** Token pairs compared (tokens in both top-k sets, over all positions). */
  pairs: number;
  maxAbsDelta: number;
  medianAbsDelta: number;
  p99AbsDelta: number;
  meanOverlap: number;
  top1Agree: number;
  /** Where the top-1 differs: the reference's top-2 margin there (largest first). */
  top1FlipMargins: number[];
}

export function summarize(diffs: PositionDiff[]): LogitSummary {
  const all = diffs.flatMap((d) => d.deltas).sort((a, b) => a - b);
  return {
    positions: diffs.length,
    pairs: all.length,
    maxAbsDelta: all.length ? all[all.length - 1] : Number.NaN,
    medianAbsDelta: quantile(all, 0.5),
    p99AbsDelta: quantile(all, 0.99),
    meanOverlap: diffs.reduce((s, d) => s + d.overlap, 0) / Math.max(1, diffs.length),
    top1Agree: diffs.filter((d) => d.top1Agrees).length,
    top1FlipMargins: diffs
      .filter((d) => !d.top1Agrees)
      .map((d) => d.margin)
      .sort((a, b) => b - a),
  };
}

/** The first position whose other-argmax is not the reference's greedy token (null: the whole path agrees). */
export function firstDivergence(forced: number[], diffs: PositionDiff[]): number | null {
  for (let i = 0; i < forced.length && i < diffs.length; i++) if (diffs[i].otherTop1 !== forced[i]) return i;
  return null;
}
