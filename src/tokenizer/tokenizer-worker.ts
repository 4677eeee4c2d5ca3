/**
 * The tokenizer thread's body (see tokenizer-thread.ts): builds its tokenizer (an adapter's: parsed, built,
 * checked, answered with READY_ID), then one job at a time, errors as data.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createError, isLoraplexError, serializeError } from '../observability/errors.ts';
import {
  adapterStopIds,
  buildAdapterTokenizer,
  decodingJson,
  parseAdapterTokenizerFiles,
  resolveBase,
} from './adapter-tokenizer.ts';
import { Tokenizer } from './tokenizer.ts';
import { type FromTokenizer, READY_ID, type TokenizerSource, type ToTokenizer } from './tokenizer-thread.ts';

const port = parentPort!;
const source = workerData as TokenizerSource;

async function build(): Promise<Tokenizer | null> {
  if ('dir' in source) return Tokenizer.fromDir(source.dir, source.options);
  if ('files' in source) return new Tokenizer(source.files, source.origin, source.options);
  const { name, texts } = source.adapter;
  try {
    const base = await resolveBase(source.adapter.base);
    const files = parseAdapterTokenizerFiles(name, texts);
    const tokenizer = buildAdapterTokenizer(name, files, base);
    const ready = {
      decoding: decodingJson(files),
      tokenizerConfig: files.tokenizerConfig ?? {},
      chatTemplate: files.chatTemplate ?? null,
      stopIds: adapterStopIds(tokenizer, base),
    };
    port.postMessage({ id: READY_ID, ready } satisfies FromTokenizer);
    return tokenizer;
  } catch (e) {
    // Our errors name the adapter and the file; anything else (a base file gone) may quote a server path.
    const failed = isLoraplexError(e)
      ? e
      : createError('INTERNAL_ERROR', {
          message: `adapter '${name}': its tokenizer could not be built (${(e as Error)?.name ?? 'error'}); try again`,
        });
    port.postMessage({ id: READY_ID, failed: serializeError(failed) } satisfies FromTokenizer);
    return null;
  }
}

const tokenizer = await build();

port.on('message', (m: ToTokenizer) => {
  try {
    if (tokenizer === null) throw new Error('this adapter tokenizer failed to build');
    const ids =
      m.op === 'encode'
        ? tokenizer.encode(m.text, { addSpecialTokens: m.addSpecialTokens ?? true })
        : tokenizer.encode(
            tokenizer.applyChatTemplate(m.messages, { addGenerationPrompt: m.addGenerationPrompt ?? true }),
            { addSpecialTokens: m.addSpecialTokens ?? false },
          );
    port.postMessage({ id: m.id, ids } satisfies FromTokenizer);
  } catch (e) {
    const err = e as Error & { code?: unknown };
    const code = typeof err.code === 'string' ? err.code : undefined;
    port.postMessage({ id: m.id, error: { name: err.name, message: err.message, code } } satisfies FromTokenizer);
  }
});
