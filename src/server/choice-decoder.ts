/**
 * One choice of a completion: the engine's token events in, text deltas out, with stop strings applied and
 * the finish and stop reasons as vLLM reports them. Streaming and non-streaming responses read the same
 * deltas, so both give the same text.
 *
 *   const choice = new ChoiceDecoder(tokenizer, { promptIds, stop: ['\n'], ... });
 *   for await (const e of engine.generate(...)) {
 *     send(choice.push(e));
 *     if (choice.finished) break; // a stop string matched: leaving the loop aborts the sequence
 *   }
 */
import type { TokenEvent } from '../engine/async-engine.ts';
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { IncrementalDetokenizer, type TokenDecoder } from '../tokenizer/detokenizer.ts';
import { StopStringMatcher } from './stop-strings.ts';

export interface ChoiceSettings {
  promptIds: readonly number[];
  stop: readonly string[];
  stopTokenIds: readonly number[];
  /** vLLM's include_stop_str_in_output: keep the matched stop string (or stop token's text). */
  includeStopStr: boolean;
  /** Stop strings are not looked for in the text of the first min_tokens tokens (vLLM). */
  minTokens: number;
}

export interface ChoiceDelta {
  text: string;
  /** The tokens this delta consumed (those after a stop string's match are never consumed). */
  tokens: number[];
  /** Aligned with tokens when the request asked for logprobs; empty otherwise. */
  logprobs: TokenLogprobs[];
  finishReason: FinishReason | null;
  /** vLLM's stop_reason: the matched stop string, the stop token id, or null (EOS, length). */
  stopReason: string | number | null;
  /** With the first delta, when the request asked for prompt logprobs (null for the first prompt token). */
  promptLogprobs?: (TokenLogprobs | null)[];
}

export class ChoiceDecoder {
  /** Tokens consumed: those generated up to and including the one that completed a stop string. */
  completionTokens = 0;
  /** No more events are needed (the engine finished, or a stop string matched). */
  finished = false;
  private readonly detok: IncrementalDetokenizer;
  private readonly stops: StopStringMatcher;

  constructor(
    tokenizer: TokenDecoder,
    private readonly settings: ChoiceSettings,
  ) {
    this.detok = new IncrementalDetokenizer(tokenizer, { promptIds: settings.promptIds, skipSpecialTokens: true });
    this.stops = new StopStringMatcher(settings.stop, settings.includeStopStr);
  }

  push(e: TokenEvent): ChoiceDelta {
    const delta: ChoiceDelta = { text: '', tokens: [], logprobs: [], finishReason: null, stopReason: null };
    if (this.finished) return delta;
    if (e.promptLogprobs) delta.promptLogprobs = e.promptLogprobs;
    for (let i = 0; i < e.tokens.length; i++) {
      const token = e.tokens[i];
      delta.tokens.push(token);
      if (e.logprobs) delta.logprobs.push(e.logprobs[i]);
      this.completionTokens++;
      // As vLLM: the text of the token the engine stopped on (EOS, a stop token id) is left out.
      if (e.finishReason === 'stop' && i === e.tokens.length - 1 && !this.settings.includeStopStr) continue;
      if (this.pushText(delta, this.detok.push(token))) return delta;
    }
    if (e.finishReason === null) return delta;
    if (this.pushText(delta, this.detok.finish())) return delta;
    delta.text += this.stops.flush();
    this.finished = true;
    delta.finishReason = e.finishReason;
    const last = e.tokens[e.tokens.length - 1];
    if (e.finishReason === 'stop' && this.settings.stopTokenIds.includes(last)) delta.stopReason = last;
    return delta;
  }

  /** Runs text through the stop strings; true when one matched (the choice is finished). */
  private pushText(delta: ChoiceDelta, text: string): boolean {
    const result = this.stops.push(text, this.completionTokens > this.settings.minTokens);
    delta.text += result.text;
    if (result.stop === null) return false;
    this.finished = true;
    delta.finishReason = 'stop';
    delta.stopReason = result.stop;
    return true;
  }
}
