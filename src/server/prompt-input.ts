/**
 * A request's prompt → token ids, with its size bounded before any heavy step: text is measured in UTF-8
 * bytes before it is tokenized (the limit defaults to 32 bytes per token of context — more than any real
 * tokenizer needs — and is configurable), large text is tokenized on its own thread so the HTTP thread (and
 * /health) never waits on it, and token-id prompts are checked to be ids of this vocabulary.
 */
import { createError, type LoraplexError } from '../observability/errors.ts';
import type { ChatMessage } from '../tokenizer/chat-template.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';
import { TokenizerThread } from '../tokenizer/tokenizer-thread.ts';

/** Default prompt limit per token of context. */
export const PROMPT_BYTES_PER_TOKEN = 32;
/** Text up to this size is tokenized inline: a few milliseconds at worst, less than a thread round trip. */
const INLINE_BYTES = 8 * 1024;
/** Counted per chat message on top of its content: the template's markup around it. */
const MESSAGE_OVERHEAD_BYTES = 16;

export interface PromptEncoderOptions {
  /** The thread large prompts go to (default: one building the codec's tokenizer, started on first use). */
  thread?: TokenizerThread;
  /** Prompts up to this many bytes are tokenized inline (default INLINE_BYTES; -1: every prompt on the thread). */
  inlineBytes?: number;
}

export class PromptEncoder {
  private readonly thread: TokenizerThread;
  private readonly inlineBytes: number;

  constructor(
    private readonly codec: TextCodec,
    private readonly maxPromptBytes: () => number,
    options: PromptEncoderOptions = {},
  ) {
    this.thread = options.thread ?? new TokenizerThread(codec.tokenizer);
    this.inlineBytes = options.inlineBytes ?? INLINE_BYTES;
  }

  /** A completion's prompt: text, or token ids (each an integer in [0, vocabSize)). */
  async completion(
    prompt: string | number[],
    vocabSize: number,
    param = 'prompt',
    options: { addSpecialTokens?: boolean } = {},
  ): Promise<number[]> {
    if (typeof prompt !== 'string') return checkTokenIds(prompt, vocabSize, param);
    const bytes = Buffer.byteLength(prompt, 'utf8');
    this.checkSize(bytes, param);
    if (options.addSpecialTokens === false) {
      return this.tokenize(
        bytes,
        () => this.codec.tokenizer.encode(prompt, { addSpecialTokens: false }),
        () => this.thread.encode(prompt, { addSpecialTokens: false }),
      );
    }
    return this.tokenize(
      bytes,
      () => this.codec.encode(prompt),
      () => this.thread.encode(prompt),
    );
  }

  /** A chat's messages through the chat template (by default: with a generation prompt, no added specials). */
  async chat(
    messages: ChatMessage[],
    options: { addGenerationPrompt?: boolean; addSpecialTokens?: boolean } = {},
  ): Promise<number[]> {
    let bytes = 0;
    for (const m of messages) bytes += Buffer.byteLength(String(m.content ?? ''), 'utf8') + MESSAGE_OVERHEAD_BYTES;
    this.checkSize(bytes, 'messages');
    const { addGenerationPrompt = true, addSpecialTokens = false } = options;
    if (!addGenerationPrompt || addSpecialTokens) {
      const tokenizer = this.codec.tokenizer;
      return this.tokenize(
        bytes,
        () => tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt }), { addSpecialTokens }),
        () => this.thread.encodeChat(messages, { addGenerationPrompt, addSpecialTokens }),
      );
    }
    return this.tokenize(
      bytes,
      () => this.codec.encodeChat(messages),
      () => this.thread.encodeChat(messages),
    );
  }

  close(): Promise<void> {
    return this.thread.close();
  }

  /** Its tokenizer thread ends once the prompts in flight are tokenized (a cache dropped this encoder). */
  retire() {
    this.thread.retire();
  }

  private checkSize(bytes: number, param: string) {
    const max = this.maxPromptBytes();
    if (bytes > max) {
      throw createError(
        'REQUEST_INVALID',
        {
          message:
            `'${param}' is ${bytes} bytes; this server takes prompts of at most ${max} bytes ` +
            '(the --max-prompt-bytes limit, derived from the context length by default)',
        },
        { param },
      );
    }
  }

  private async tokenize(bytes: number, inline: () => number[], offThread: () => Promise<number[]>) {
    try {
      return bytes <= this.inlineBytes ? inline() : await offThread();
    } catch (e) {
      throw templateError(e);
    }
  }
}

/** Token-id prompts: integers in [0, vocabSize) (the schema already refuses non-integers). */
function checkTokenIds(ids: number[], vocabSize: number, param: string): number[] {
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) {
    throw createError(
      'REQUEST_INVALID',
      { message: `'${param}' token ids must be integers in [0, ${vocabSize}); ${param}[${bad}] is ${ids[bad]}` },
      { param: 'prompt' },
    );
  }
  return ids;
}

/** A template that refuses the messages (raise_exception) is the client's problem; anything else, the server's. */
function templateError(e: unknown): unknown {
  const err = e as Error & { code?: string };
  if (err?.name !== 'ChatTemplateError') return e;
  if (err.code === 'chat_template_raised') {
    return createError(
      'REQUEST_INVALID',
      { message: `the model's chat template refused these messages: ${err.message}` },
      { param: 'messages' },
    );
  }
  const failed: LoraplexError = createError('INTERNAL_ERROR', {
    message: "the model's chat template failed on these messages",
  });
  return Object.assign(failed, { cause: e });
}
