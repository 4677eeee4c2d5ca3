/**
 * The tokenizer files an adapter may ship beside its weights (transformers' save_pretrained writes them when
 * a fine-tune added tokens or changed the chat template): tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, chat_template.jinja. Read as text through the adapter's own contained opener
 * (src/adapters/adapter-files.ts: inside the adapter's root, no symlink out, regular files only), each size
 * capped, never following a path named inside a file; parsing and building happen on the adapter
 * tokenizer's thread. Messages name the adapter and the file, never a server path nor the file's contents.
 *
 *   const texts = await readAdapterTokenizerTexts('sql', '/adapters/sql', '/adapters'); // null: none shipped
 */
import { adapterFileLabel, openAdapterDir, openAdapterFile } from '../adapters/adapter-files.ts';
import { createError } from '../observability/errors.ts';
import type { AdapterTokenizerTexts } from '../tokenizer/adapter-tokenizer.ts';

const MiB = 1024 * 1024;
/** Largest file of each kind read: Gemma 3's tokenizer.json (262k tokens) is ~33 MiB, its config ~1.2 MiB. */
export const TOKENIZER_FILE_LIMITS = {
  'tokenizer.json': 64 * MiB,
  'tokenizer_config.json': 16 * MiB,
  'special_tokens_map.json': 1 * MiB,
  'chat_template.jinja': 1 * MiB,
} as const;
export type TokenizerFileName = keyof typeof TOKENIZER_FILE_LIMITS;

/**
 * The adapter's tokenizer files as text, or null when it ships no tokenizer.json (its requests then use the
 * base's tokenizer, as before). `root` bounds every file (default: the adapter directory itself).
 */
export async function readAdapterTokenizerTexts(
  name: string,
  dir: string,
  root?: string,
): Promise<AdapterTokenizerTexts | null> {
  const adapterDir = await openAdapterDir(name, dir, root);
  const read = async (file: TokenizerFileName): Promise<string | null> => {
    const opened = await openAdapterFile(adapterDir, file, 'ADAPTER_INVALID_CONFIG');
    if (opened === null) return null;
    const { fh, stats } = opened;
    try {
      const limit = TOKENIZER_FILE_LIMITS[file];
      if (stats.size > limit) {
        throw createError('ADAPTER_INVALID_CONFIG', {
          file: adapterFileLabel(name, file),
          problem: `is ${stats.size} bytes; tokenizer files are read up to ${limit} bytes`,
        });
      }
      // Read what fstat promised, no more: a file growing meanwhile is not followed past the limit.
      const bytes = Buffer.alloc(stats.size);
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await fh.read(bytes, filled, bytes.length - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return bytes.subarray(0, filled).toString('utf8');
    } finally {
      await fh.close();
    }
  };
  const tokenizerJson = await read('tokenizer.json');
  if (tokenizerJson === null) return null;
  return {
    tokenizerJson,
    tokenizerConfig: await read('tokenizer_config.json'),
    specialTokensMap: await read('special_tokens_map.json'),
    chatTemplate: await read('chat_template.jinja'),
  };
}
