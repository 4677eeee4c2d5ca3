/**
 * Streams text from token ids as they are generated. Two problems a naive per-token decode has:
 *  - a character split over several byte-level tokens decodes to U+FFFD until its last byte arrives;
 *  - some tokenizers decode a token differently at the start of a sequence (SentencePiece drops the
 *    leading space), so decoding one token alone is wrong.
 * As in vLLM/TGI, each step decodes a small window [prefixOffset, end) and emits what it adds past
 * [prefixOffset, readOffset); text ending in U+FFFD is held back until more tokens complete it.
 *
 *   const detok = new IncrementalDetokenizer(tokenizer, { promptIds });
 *   for (const id of generated) send(detok.push(id));
 *   send(detok.finish());
 */

export interface TokenDecoder {
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

export interface DetokenizerOptions {
  /** The prompt's ids: its last few tokens give the first generated tokens their context. */
  promptIds?: readonly number[];
  skipSpecialTokens?: boolean;
}

/** Prompt tokens kept as context, as vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET. */
const PROMPT_CONTEXT_TOKENS = 5;
const REPLACEMENT_CHARACTER = '\uFFFD';

export class IncrementalDetokenizer {
  /** Ids from prefixOffset on; older ones are dropped once their text is emitted. */
  private window: number[];
  /** Ids before readOffset (in the window) have had their text emitted. */
  private readOffset: number;
  private emitted = '';
  private readonly decodeOptions: { skipSpecialTokens: boolean };

  constructor(
    private readonly tokenizer: TokenDecoder,
    options: DetokenizerOptions = {},
  ) {
    this.window = [...(options.promptIds ?? []).slice(-PROMPT_CONTEXT_TOKENS)];
    this.readOffset = this.window.length;
    this.decodeOptions = { skipSpecialTokens: options.skipSpecialTokens ?? false };
  }

  /** Adds one generated id; returns the text it completes (often '', never a partial character). */
  push(id: number): string {
    this.window.push(id);
    const prefixText = this.tokenizer.decode(this.window.slice(0, this.readOffset), this.decodeOptions);
    const fullText = this.tokenizer.decode(this.window, this.decodeOptions);
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT_CHARACTER)) return '';
    this.window = this.window.slice(this.readOffset);
    this.readOffset = this.window.length;
    return this.emit(fullText.slice(prefixText.length));
  }

  pushAll(ids: readonly number[]): string {
    let text = '';
    for (const id of ids) text += this.push(id);
    return text;
  }

  /** At the end of generation: the held-back text, incomplete characters included as U+FFFD. */
  finish(): string {
    if (this.window.length === this.readOffset) return '';
    const prefixText = this.tokenizer.decode(this.window.slice(0, this.readOffset), this.decodeOptions);
    const fullText = this.tokenizer.decode(this.window, this.decodeOptions);
    this.window = this.window.slice(this.readOffset);
    this.readOffset = this.window.length;
    return fullText.length > prefixText.length ? this.emit(fullText.slice(prefixText.length)) : '';
  }

  /** All the text returned so far. */
  get text(): string {
    return this.emitted;
  }

  private emit(text: string): string {
    this.emitted += text;
    return text;
  }
}
