/**
 * Text in and out, for the server and the generate command: plain prompts, chat messages through the chat
 * template, and ids back to text without special tokens (as the OpenAI-style servers do).
 *
 *   const codec = await loadTextCodec('/models/Qwen2.5-0.5B-Instruct');
 *   const ids = codec.encodeChat([{ role: 'user', content: 'Hi' }]);
 */
import type { ChatMessage } from './chat-template.ts';
import { Tokenizer } from './tokenizer.ts';

export interface TextCodec {
  encode(text: string): number[];
  /** The chat template with a generation prompt, encoded without adding special tokens again. */
  encodeChat(messages: ChatMessage[]): number[];
  decode(ids: readonly number[]): string;
  readonly tokenizer: Tokenizer;
}

export function textCodec(tokenizer: Tokenizer): TextCodec {
  return {
    tokenizer,
    encode: (text) => tokenizer.encode(text),
    encodeChat: (messages) =>
      tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), {
        addSpecialTokens: false,
      }),
    decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
  };
}

export async function loadTextCodec(modelDir: string): Promise<TextCodec> {
  return textCodec(await Tokenizer.fromDir(modelDir));
}
