/**
 * Latency-aware chunked prefill: how many prefill tokens fit in a step so it stays near a target time.
 * A step's time is modelled as overhead + perToken · tokens (every token is a row through the same GEMMs;
 * attention's share grows with context but stays small at the step sizes that matter), fitted by least
 * squares over the recent steps with exponential forgetting, so it follows the machine's load. Until it has
 * seen steps of two different sizes it allows the whole token budget (the fit is not determined yet).
 * Pure arithmetic: the engine feeds it (tokens, milliseconds) per step.
 */
export interface PrefillAllowance {
  /** The step's time target (ms). */
  targetMs: number;
  /** Decode rows already in the step (one token each). */
  decodeRows: number;
  /** The engine's token budget per step (--max-batch-tokens): never exceeded. */
  maxBatchTokens: number;
  /** A step always takes at least this many prefill tokens, so prompts progress under any load. */
  minChunk: number;
}

export class StepTimeModel {
  // Weighted sums of the least-squares normal equations for ms = a + b·tokens.
  private w = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;

  /** `forget` in (0, 1]: the weight a step keeps per later step (0.9: about the last 10 steps count). */
  constructor(private readonly forget = 0.9) {}

  observe(tokens: number, ms: number): void {
    if (!(tokens > 0) || !(ms >= 0) || !Number.isFinite(ms)) return;
    const f = this.forget;
    this.w = this.w * f + 1;
    this.sx = this.sx * f + tokens;
    this.sy = this.sy * f + ms;
    this.sxx = this.sxx * f + tokens * tokens;
    this.sxy = this.sxy * f + tokens * ms;
  }

  /** The fitted { overheadMs, perTokenMs }, or null while the steps seen do not determine it. */
  fit(): { overheadMs: number; perTokenMs: number } | null {
    const det = this.w * this.sxx - this.sx * this.sx;
    // Steps of (nearly) one size: the slope is not determined.
    if (this.w < 2 || det <= 1e-9 * this.w * this.sxx) return null;
    const perTokenMs = (this.w * this.sxy - this.sx * this.sy) / det;
    const overheadMs = (this.sy - perTokenMs * this.sx) / this.w;
    if (!(perTokenMs > 0)) return null;
    return { overheadMs: Math.max(0, overheadMs), perTokenMs };
  }

  /** Prefill tokens for the next step: what keeps it near the target, within [minChunk, budget left]. */
  prefillTokens(a: PrefillAllowance): number {
    const left = Math.max(0, a.maxBatchTokens - a.decodeRows);
    const model = this.fit();
    if (!model) return left;
    const fits = Math.floor((a.targetMs - model.overheadMs) / model.perTokenMs + 1e-9) - a.decodeRows;
    return Math.min(left, Math.max(a.minChunk, fits));
  }
}
