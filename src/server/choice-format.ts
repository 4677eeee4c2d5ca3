/**
 * How one choice's output (a whole choice, or a streamed delta) is shaped for each of the two OpenAI APIs:
 * completions' `text` and logprobs, chat's `message`/`delta` and logprobs.
 */
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { CompletionLogprobsBuilder, chatLogprobs, type TokenTexts } from './logprobs.ts';

export interface ChoiceFormat {
  choice(text: string, finish: FinishReason | null, stopReason: string | number | null): Record<string, unknown>;
  delta(
    text: string,
    finish: FinishReason | null,
    stopReason: string | number | null,
    first: boolean,
  ): Record<string, unknown>;
  /**
   * The logprobs field for these tokens (called for the whole choice, or once per streamed delta); null
   * entries only for an echoed prompt's first token (completions).
   */
  logprobs(tokens: readonly number[], logprobs: readonly (TokenLogprobs | null)[]): unknown;
}

export interface Flavor {
  object: string;
  chunkObject: string;
  /** A fresh formatter for choice `index`. */
  format(index: number, names: TokenTexts): ChoiceFormat;
}

/** The engine's 'abort' is never reported: a stop string (or the client) ended the choice. */
const reported = (finish: FinishReason | null) => (finish === 'abort' ? 'stop' : finish);

export const completionFlavor: Flavor = {
  object: 'text_completion',
  chunkObject: 'text_completion',
  format(index, names) {
    const builder = new CompletionLogprobsBuilder(names);
    const choice = (text: string, finish: FinishReason | null, stopReason: string | number | null) => ({
      index,
      text,
      finish_reason: reported(finish),
      stop_reason: stopReason,
    });
    return {
      choice,
      delta: choice,
      logprobs: (tokens, logprobs) => builder.build(tokens, logprobs),
    };
  },
};

export const chatFlavor: Flavor = {
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  format(index, names) {
    return {
      choice: (text, finish, stopReason) => ({
        index,
        message: { role: 'assistant', content: text },
        finish_reason: reported(finish),
        stop_reason: stopReason,
      }),
      delta: (text, finish, stopReason, first) => ({
        index,
        delta: first ? { role: 'assistant', content: text } : text ? { content: text } : {},
        finish_reason: reported(finish),
        stop_reason: stopReason,
      }),
      logprobs: (tokens, logprobs) => chatLogprobs(names, tokens, logprobs as TokenLogprobs[]),
    };
  },
};
