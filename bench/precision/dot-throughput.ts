/**
 * What --bf16-dot buys on model-bf16: prefill and decode tokens/s with the dot path off, AMX, vdpbf16ps. One
 * engine (the flag is read at each GEMM call, the packed weights are the same for every path); each round
 * every path in turn (the starting one rotates) prefills a fresh batch in one step, decodes a window, and
 * aborts it; each round's figures are paired with the 'off' path's of the same round.
 */
import { packAdapter } from '../../src/adapters/pack.ts';
import type { Backend } from '../../src/backends/types.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { bf16DotPath } from '../../src/kernels/native/gemm.ts';
import type { LoadedModel } from '../../src/model/weights.ts';
import { syntheticAdapter } from '../synthetic-adapter.ts';
import { median } from '../util.ts';
import { type DotPath, setDotPath } from './dot-path.ts';
import { syntheticPrompt } from './throughput.ts';

export interface DotThroughputWorkload {
  /** Sequences per batch; the whole batch's prompts are one prefill step. */
  sequences: number;
  adapters: number;
  rank: number;
  promptTokens: number;
  decodeSteps: number;
  rounds: number;
}

export interface DotThroughputResult {
  path: DotPath;
  /** Prompt tokens per second of each round's prefill step, in round order. */
  prefillTokensPerSecond: number[];
  /** Decode tokens per second of each round's window. */
  decodeTokensPerSecond: number[];
  /** Median over rounds of this path's figure ÷ the 'off' path's in the same round. */
  prefillRatio: number;
  decodeRatio: number;
}

export interface DotThroughput {
  workload: DotThroughputWorkload;
  results: DotThroughputResult[];
}

interface Window {
  prefillSeconds: number;
  decodeSeconds: number;
}

/** `paths` must start with 'off', the reference; the dot path in force before is restored after. */
export function measureDotThroughput(
  loaded: LoadedModel,
  backend: Backend,
  paths: DotPath[],
  w: DotThroughputWorkload,
  log: (line: string) => void,
): DotThroughputResult[] {
  if (paths[0] !== 'off') throw new Error("the first dot path must be 'off' (the reference)");
  const { config } = loaded;
  const batchTokens = w.sequences * w.promptTokens;
  const engine = new LLMEngine(loaded, {
    ...DEFAULT_ENGINE_OPTIONS,
    backend,
    loraDtype: 'f32',
    kvCacheDtype: 'f32',
    maxLoras: w.adapters,
    maxRunningSeqs: w.sequences,
    maxBatchTokens: batchTokens,
    kvCacheTokens: w.sequences * (w.promptTokens + w.decodeSteps + 16) + 1024,
  });
  for (let i = 0; i < w.adapters; i++) {
    engine.addAdapter(`a${i}`, packAdapter(syntheticAdapter(config, w.rank, 1000 + i, `a${i}`), config));
  }
  let batch = 0;
  // Fresh prompts each batch, so no window reuses another's KV blocks.
  const window = (path: DotPath): Window => {
    setDotPath(path);
    const first = batch++ * w.sequences;
    const seqs = Array.from({ length: w.sequences }, (_, i) =>
      engine.addRequest({
        promptIds: syntheticPrompt(first + i, w.promptTokens, config.vocabSize),
        adapter: `a${i % w.adapters}`,
        params: { maxTokens: w.decodeSteps + 1, temperature: 0, ignoreEos: true },
      }),
    );
    const t0 = performance.now();
    engine.step();
    const t1 = performance.now();
    if (seqs.some((s) => s.outputIds.length !== 1)) throw new Error('the batch did not prefill in one step');
    for (let s = 0; s < w.decodeSteps; s++) engine.step();
    const t2 = performance.now();
    for (const s of seqs) engine.abort(s);
    return { prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
  };
  const before = bf16DotPath();
  try {
    for (const path of paths) window(path); // warm-up: first-touch of KV pages, AMX tile state
    const windows: Window[][] = paths.map(() => []);
    for (let round = 0; round < w.rounds; round++) {
      for (let k = 0; k < paths.length; k++) {
        const p = (round + k) % paths.length;
        windows[p].push(window(paths[p]));
      }
      log(
        `  round ${round + 1}/${w.rounds}: ` +
          paths
            .map((path, p) => {
              const x = windows[p][round];
              return `${path} prefill ${(batchTokens / x.prefillSeconds).toFixed(0)}, decode ${((w.sequences * w.decodeSteps) / x.decodeSeconds).toFixed(1)} tok/s`;
            })
            .join('; '),
      );
    }
    const prefill = windows.map((ws) => ws.map((x) => batchTokens / x.prefillSeconds));
    const decode = windows.map((ws) => ws.map((x) => (w.sequences * w.decodeSteps) / x.decodeSeconds));
    return paths.map((path, p) => ({
      path,
      prefillTokensPerSecond: prefill[p],
      decodeTokensPerSecond: decode[p],
      prefillRatio: median(prefill[p].map((v, i) => v / prefill[0][i])),
      decodeRatio: median(decode[p].map((v, i) => v / decode[0][i])),
    }));
  } finally {
    setDotPath(before);
  }
}
