/** docs/figures/sizes.json: what bench:sizes measured, one entry per model file; report.ts draws it. */
import type { MachinePeaks } from '../machine.ts';
import type { EngineProbe } from './engine-probe.ts';
import type { GgufBytes } from './gguf-bytes.ts';
import type { LlamaBenchFigures } from './llama-bench.ts';
import type { ServingFigures } from './serving-probe.ts';

export interface LoraplexFigures extends EngineProbe {
  decodeTokPerS: number;
  prefillTokPerS: number;
  /** weightBytesPerToken × decode tok/s */
  readGBs: number;
  /** readGBs ÷ the read bandwidth measured in the same run */
  bandwidthFraction: number;
  /** heldBytesPerToken × decode tok/s ÷ the read bandwidth: the share the kernels' own bytes reach */
  heldBandwidthFraction?: number;
}

export interface SizeEntry {
  /** e.g. "1B Q4_K_M" */
  label: string;
  shapeOf: string;
  format: string;
  /** The file or folder loraplex loads. */
  path: string;
  /** The GGUF file llama.cpp runs for this row (the BF16 GGUF for the bf16 row). */
  ggufPath: string | null;
  gguf: GgufBytes | null;
  loraplex: LoraplexFigures | null;
  /** Why loraplex has no figures for this row, when it has none. */
  loraplexSkipped?: string;
  llamacpp: LlamaBenchFigures | null;
  /** llama.cpp's tg tok/s × the GGUF's bytes read per token, and that ÷ the measured read bandwidth. */
  llamacppReadGBs: number | null;
  llamacppBandwidthFraction: number | null;
  serving: ServingFigures[] | null;
}

export interface SizesArtifact {
  generatedAt: string;
  note: string;
  /** Measured at the start and at the end of the run; figures divide by the median read bandwidth. */
  machine: MachinePeaks[];
  readGBs: number;
  settings: {
    decodeSteps: number;
    prefillTokens: number;
    serving: { concurrency: number; requests: number; inputTokens: number; outputTokens: number; repeats: number };
    adapterRank: number;
  };
  entries: SizeEntry[];
  seconds: number;
}
