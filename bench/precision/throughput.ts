/**
 * Decode throughput per precision setting: 32 sequences over 32 distinct adapters (rank 16, all seven
 * projections). Every setting's engine is built and prefilled first, then the settings take turns, a window
 * of decode steps each, round after round (the starting setting rotates), so machine load drifts over all of
 * them alike; each round's tokens/s is paired with the reference setting's of the same round.
 */
import { packAdapter } from '../../src/adapters/pack.ts';
import type { Backend, KvDtype } from '../../src/backends/types.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import type { Sequence } from '../../src/engine/sequence.ts';
import type { LoraDtype } from '../../src/kernels/types.ts';
import type { LoadedModel } from '../../src/model/weights.ts';
import { LORA_VALUE_BYTES } from '../lora-step.ts';
import { syntheticAdapter } from '../synthetic-adapter.ts';
import { median } from '../util.ts';

export interface ThroughputSetting {
  loraDtype: LoraDtype;
  kvCacheDtype: KvDtype;
}

export interface ThroughputWorkload {
  sequences: number;
  adapters: number;
  rank: number;
  promptTokens: number;
  rounds: number;
  stepsPerRound: number;
}

export interface ThroughputResult extends ThroughputSetting {
  /** Decode tokens/s of each round, in round order. */
  roundTokensPerSecond: number[];
  medianTokensPerSecond: number;
  /** Median over rounds of this setting's tokens/s ÷ the first setting's in the same round. */
  ratio: number;
  kvBytesPerToken: number;
  /** Bytes one of the rank-`rank` adapters takes in a slot. */
  slotBytesPerAdapter: number;
}

/** Output tokens beyond the timed decode steps: room for the steps a sequence decodes while others prefill. */
const PREFILL_SLACK = 32;

interface Running {
  setting: ThroughputSetting;
  engine: LLMEngine;
  seqs: Sequence[];
  times: number[];
}

/** A deterministic prompt of `length` token ids, different for each `index`. */
export function syntheticPrompt(index: number, length: number, vocab: number): number[] {
  return Array.from({ length }, (_, j) => 1 + ((index * 7919 + j * 104_729) % (vocab - 1)));
}

export function measureThroughput(
  loaded: LoadedModel,
  backend: Backend,
  settings: ThroughputSetting[],
  w: ThroughputWorkload,
  log: (line: string) => void,
): ThroughputResult[] {
  const { config } = loaded;
  const packed = Array.from({ length: w.adapters }, (_, i) =>
    packAdapter(syntheticAdapter(config, w.rank, 1000 + i, `a${i}`), config),
  );
  const decodeSteps = w.rounds * w.stepsPerRound;
  const running: Running[] = settings.map((setting) => {
    const engine = new LLMEngine(loaded, {
      ...DEFAULT_ENGINE_OPTIONS,
      backend,
      maxLoras: w.adapters,
      maxRunningSeqs: w.sequences,
      kvCacheTokens: w.sequences * (w.promptTokens + decodeSteps + PREFILL_SLACK) + 1024,
      ...setting,
    });
    for (const [i, p] of packed.entries()) engine.addAdapter(`a${i}`, p);
    const seqs = Array.from({ length: w.sequences }, (_, i) =>
      engine.addRequest({
        promptIds: syntheticPrompt(i, w.promptTokens, config.vocabSize),
        adapter: `a${i % w.adapters}`,
        // Chunked prefill gives the first sequences a few decode steps before the last one has its first token.
        params: { maxTokens: decodeSteps + PREFILL_SLACK, temperature: 0, ignoreEos: true },
      }),
    );
    const t0 = performance.now();
    while (seqs.some((s) => s.outputIds.length === 0)) engine.step();
    log(
      `  prefilled lora ${setting.loraDtype} / kv ${setting.kvCacheDtype} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    return { setting, engine, seqs, times: [] };
  });
  for (let round = 0; round < w.rounds; round++) {
    for (let k = 0; k < running.length; k++) {
      const r = running[(round + k) % running.length];
      const t0 = performance.now();
      for (let s = 0; s < w.stepsPerRound; s++) r.engine.step();
      r.times.push((performance.now() - t0) / 1000);
      if (r.seqs.some((s) => s.isFinished)) throw new Error('a sequence finished before the last round');
    }
    log(
      `  round ${round + 1}/${w.rounds}: ${running.map((r) => tokensPerSecond(r.times[round], w).toFixed(1)).join(', ')} tok/s`,
    );
  }
  const base = running[0].times.map((t) => tokensPerSecond(t, w));
  return running.map((r) => {
    const tps = r.times.map((t) => tokensPerSecond(t, w));
    const slotBytesPerAdapter = packed[0].weights.length * LORA_VALUE_BYTES[r.setting.loraDtype];
    return {
      ...r.setting,
      roundTokensPerSecond: tps,
      medianTokensPerSecond: median(tps),
      ratio: median(tps.map((v, i) => v / base[i])),
      kvBytesPerToken: r.engine.runner.kv.bytesPerToken,
      slotBytesPerAdapter,
    };
  });
}

function tokensPerSecond(seconds: number, w: ThroughputWorkload): number {
  return (w.sequences * w.stepsPerRound) / seconds;
}
