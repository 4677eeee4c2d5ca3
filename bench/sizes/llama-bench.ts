/**
 * llama.cpp's own figures for a GGUF file: `llama-bench -o json` (prompt processing pp and token generation tg,
 * tok/s averaged over its repetitions), from the build under ~/.cache/loraplex/llamacpp (never built here).
 *
 *   const figures = llamaBench(bin, '/…/llama3-1b-Q8_0.gguf', { promptTokens: 128, genTokens: 128, threads: 2 });
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface LlamaBenchOptions {
  promptTokens: number;
  genTokens: number;
  threads: number;
  repetitions: number;
}

export interface LlamaBenchFigures {
  promptTokens: number;
  genTokens: number;
  threads: number;
  repetitions: number;
  /** pp<promptTokens>: prompt tokens per second. */
  prefillTokPerS: number;
  prefillStddev: number;
  /** tg<genTokens>: generated tokens per second, one sequence. */
  decodeTokPerS: number;
  decodeStddev: number;
  /** What llama-bench reports about the build and the file. */
  build: string;
  modelType: string;
  modelBytes: number;
}

/** The llama-bench binary when the llama.cpp build is READY, else null (the figures are left out). */
export function llamaBenchBinary(llamacppRoot: string): string | null {
  const bin = join(llamacppRoot, 'build', 'bin', 'llama-bench');
  return existsSync(join(llamacppRoot, 'READY')) && existsSync(bin) ? bin : null;
}

interface LlamaBenchRow {
  n_prompt: number;
  n_gen: number;
  avg_ts: number;
  stddev_ts: number;
  build_commit?: string;
  build_number?: number;
  model_type?: string;
  model_size?: number;
}

export function llamaBench(bin: string, model: string, o: LlamaBenchOptions): LlamaBenchFigures {
  const out = execFileSync(
    bin,
    ['-m', model, '-p', String(o.promptTokens), '-n', String(o.genTokens), '-t', String(o.threads)].concat([
      '-r',
      String(o.repetitions),
      '-o',
      'json',
    ]),
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 },
  );
  const rows = JSON.parse(out) as LlamaBenchRow[];
  const pp = rows.find((r) => r.n_prompt > 0 && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen > 0 && r.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench gave no pp/tg rows for ${model}: ${out.slice(0, 400)}`);
  return {
    ...o,
    prefillTokPerS: pp.avg_ts,
    prefillStddev: pp.stddev_ts,
    decodeTokPerS: tg.avg_ts,
    decodeStddev: tg.stddev_ts,
    build: `${tg.build_number ?? '?'} (${tg.build_commit ?? '?'})`,
    modelType: tg.model_type ?? '?',
    modelBytes: tg.model_size ?? 0,
  };
}
