/**
 * Synthetic prompts of an exact token length, as AIPerf builds them: take a window of the corpus's tokens
 * at a seeded offset, decode it, and re-tokenize; decode→encode does not always round-trip, so trim or
 * extend the window until the text itself is `target` tokens long.
 */
import { CORPUS } from './corpus.ts';
import type { BenchRandom } from './random.ts';

/** The part of a tokenizer the benchmark needs. */
export interface TextTokenizer {
  /** Prompt tokens of `text`, without special tokens. */
  count(text: string): number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

export interface SyntheticPrompt {
  text: string;
  tokens: number;
}

const MAX_ADJUSTMENTS = 32;

export class PromptSynthesizer {
  private readonly corpusIds: number[];

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly rng: BenchRandom,
    corpus = CORPUS,
  ) {
    this.corpusIds = tokenizer.encode(corpus);
    if (this.corpusIds.length === 0) throw new Error('the prompt corpus tokenized to nothing');
  }

  /** A prompt whose length is drawn from Normal(mean, std), rounded, at least 1. */
  sample(mean: number, std: number): SyntheticPrompt {
    return this.synthesize(this.rng.positiveInt(mean, std));
  }

  synthesize(target: number): SyntheticPrompt {
    let offset = this.rng.int(this.corpusIds.length);
    let best: SyntheticPrompt | null = null;
    for (let attempt = 0; attempt < 4; attempt++) {
      const found = this.fromOffset(offset, target);
      if (found.tokens === target) return found;
      if (!best || Math.abs(found.tokens - target) < Math.abs(best.tokens - target)) best = found;
      offset = this.rng.int(this.corpusIds.length);
    }
    return best as SyntheticPrompt;
  }

  private fromOffset(offset: number, target: number): SyntheticPrompt {
    const take = (n: number) =>
      Array.from({ length: n }, (_, i) => this.corpusIds[(offset + i) % this.corpusIds.length]);
    let width = target;
    let text = this.tokenizer.decode(take(width)).trimStart();
    let tokens = this.tokenizer.count(text);
    for (let i = 0; i < MAX_ADJUSTMENTS && tokens !== target; i++) {
      width = Math.max(1, width + (target - tokens));
      text = this.tokenizer.decode(take(width)).trimStart();
      tokens = this.tokenizer.count(text);
    }
    return { text, tokens };
  }
}
