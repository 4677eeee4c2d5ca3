/** The artifact bench:precision writes, and the per-setting figures the page and the charts quote from it. */
import type { KvDtype } from '../../src/backends/types.ts';
import type { LoraDtype } from '../../src/kernels/types.ts';
import { median } from '../util.ts';
import type { CaseResult } from './accuracy.ts';
import type { DotPath } from './dot-path.ts';
import type { DotThroughput } from './dot-throughput.ts';
import type { ThroughputResult, ThroughputWorkload } from './throughput.ts';

export const PRECISION_ARTIFACT = 'precision.json';
/** Written by bench/precision/peft_bf16_kv.py, beside the artifact. */
export const PEFT_BF16_KV = 'peft-bf16-kv.json';

export interface AccuracyRun {
  model: 'f32' | 'bf16';
  loraDtype: LoraDtype;
  kvCacheDtype: KvDtype;
  /** --bf16-dot on for this run (model-bf16 only); missing in artifacts older than the flag's rows: off. */
  bf16Dot?: boolean;
  /** The dot path the run actually took (bf16DotPath()): 'amx' or 'vdpbf16ps'; set when bf16Dot is. */
  bf16DotPath?: DotPath;
  /** 'oracle': transformers + PEFT (f32); 'engine': this model's f32-slot, f32-KV run. */
  reference: 'oracle' | 'engine';
  kvBytesPerToken: number;
  seconds: number;
  cases: CaseResult[];
  /** model-bf16 only: the same run against the f32 oracle (what bf16 weights cost, for scale). */
  vsOracle: CaseResult[] | null;
}

export interface PrecisionArtifact {
  generated: string;
  command: string;
  machine: { isa: string; threads: number };
  model: string;
  quick: boolean;
  accuracy: AccuracyRun[];
  throughput: { workload: ThroughputWorkload; results: ThroughputResult[] };
  /** Prefill and decode tokens/s on model-bf16 per dot path (absent: not measured, as in --quick or older runs). */
  dotThroughput?: DotThroughput | null;
  seconds: number;
  /**
   * PEFT itself with keys and values rounded to bf16 (bench/precision/peft_bf16_kv.py): each case's max
   * |Δ| of the last-position logits against plain PEFT; null when that script has not been run.
   */
  peftBf16Kv: { generated: string; cases: Record<string, number> } | null;
}

export interface AgreementSummary {
  worst: number;
  median: number;
  identical: number;
  total: number;
  /** Divergent cases, earliest first: the step and the reference's top-2 margin there. */
  divergences: { id: string; step: number; margin: number | null }[];
  /** Largest reference margin at which some case diverged (null: none diverged). */
  largestDivergentMargin: number | null;
  /** Largest move of a top-2 margin before any divergence (see CaseResult.marginDrift). */
  worstMarginDrift: number | null;
}

export function summarize(cases: CaseResult[]): AgreementSummary {
  const divergences = cases
    .filter((c) => c.firstDivergence !== null)
    .map((c) => ({ id: c.id, step: c.firstDivergence as number, margin: c.marginAtDivergence }))
    .sort((a, b) => a.step - b.step);
  const margins = divergences.map((d) => d.margin).filter((m): m is number => m !== null);
  return {
    worst: Math.max(...cases.map((c) => c.maxAbsDiff)),
    median: median(cases.map((c) => c.maxAbsDiff)),
    identical: cases.filter((c) => c.identical).length,
    total: cases.length,
    divergences,
    largestDivergentMargin: margins.length ? Math.max(...margins) : null,
    worstMarginDrift: cases.some((c) => c.marginDrift !== null)
      ? Math.max(...cases.map((c) => c.marginDrift ?? 0))
      : null,
  };
}

/** The dot path a run took: 'off' unless --bf16-dot was on (older artifacts have no field: off). */
export function dotPathOf(r: Pick<AccuracyRun, 'bf16Dot' | 'bf16DotPath'>): DotPath {
  return r.bf16Dot ? (r.bf16DotPath ?? 'off') : 'off';
}

/** How the page names a dot path. */
export const DOT_PATH_NAME: Record<DotPath, string> = { off: 'off', amx: 'AMX', vdpbf16ps: 'vdpbf16ps' };

export function settingLabel(s: {
  loraDtype: LoraDtype;
  kvCacheDtype: KvDtype;
  bf16Dot?: boolean;
  bf16DotPath?: DotPath;
}): string {
  const dot = dotPathOf(s);
  return `slots ${s.loraDtype} · KV ${s.kvCacheDtype}${dot === 'off' ? '' : ` · dot ${DOT_PATH_NAME[dot]}`}`;
}

/** The throughput result for a setting, if it was measured. */
export function throughputOf(a: PrecisionArtifact, lora: LoraDtype, kv: KvDtype): ThroughputResult | undefined {
  return a.throughput.results.find((r) => r.loraDtype === lora && r.kvCacheDtype === kv);
}

export function accuracyOf(
  a: PrecisionArtifact,
  model: 'f32' | 'bf16',
  lora: LoraDtype,
  kv: KvDtype,
  dot: DotPath = 'off',
): AccuracyRun | undefined {
  return a.accuracy.find(
    (r) => r.model === model && r.loraDtype === lora && r.kvCacheDtype === kv && dotPathOf(r) === dot,
  );
}

/** The dot-path throughput figures for a path, if measured. */
export function dotThroughputOf(a: PrecisionArtifact, path: DotPath) {
  return a.dotThroughput?.results.find((r) => r.path === path);
}
