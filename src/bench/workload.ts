/**
 * The stream of requests: prompts from a pool (synthetic, made before the run so tokenizing never competes
 * with the measurement, or a dataset), cycled in order; a model per request from the selector unless the
 * dataset names one; max_tokens from the dataset or drawn from Normal(mean, std).
 */
import type { DatasetEntry } from './dataset.ts';
import type { RequestSpec } from './endpoint.ts';
import type { PromptSynthesizer } from './prompts.ts';
import type { BenchRandom } from './random.ts';

export interface LengthDistribution {
  mean: number;
  stddev: number;
}

export function syntheticPool(synth: PromptSynthesizer, input: LengthDistribution, size: number): DatasetEntry[] {
  return Array.from({ length: size }, () => {
    const p = synth.sample(input.mean, input.stddev);
    return { prompt: { text: p.text }, inputTokens: p.tokens };
  });
}

export class Workload {
  private next = 0;

  constructor(
    private readonly pool: readonly DatasetEntry[],
    private readonly selectModel: () => string,
    private readonly output: LengthDistribution | null,
    private readonly rng: BenchRandom,
  ) {
    if (pool.length === 0) throw new Error('the workload has no prompt');
  }

  request(): RequestSpec {
    const entry = this.pool[this.next++ % this.pool.length];
    const maxTokens =
      entry.maxTokens ?? (this.output ? this.rng.positiveInt(this.output.mean, this.output.stddev) : null);
    return {
      model: entry.model ?? this.selectModel(),
      prompt: entry.prompt,
      inputTokens: entry.inputTokens,
      maxTokens,
    };
  }
}
