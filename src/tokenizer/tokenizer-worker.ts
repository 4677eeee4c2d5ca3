/** The tokenizer thread's body (see tokenizer-thread.ts): one job at a time, errors as data. */
import { parentPort, workerData } from 'node:worker_threads';
import { textCodec } from './text-codec.ts';
import { Tokenizer } from './tokenizer.ts';
import type { FromTokenizer, TokenizerSource, ToTokenizer } from './tokenizer-thread.ts';

const port = parentPort!;
const source = workerData as TokenizerSource;
const codec = textCodec(
  'dir' in source
    ? await Tokenizer.fromDir(source.dir, source.options)
    : new Tokenizer(source.files, source.origin, source.options),
);

port.on('message', (m: ToTokenizer) => {
  try {
    const ids = m.op === 'encode' ? codec.encode(m.text) : codec.encodeChat(m.messages);
    port.postMessage({ id: m.id, ids } satisfies FromTokenizer);
  } catch (e) {
    const err = e as Error & { code?: unknown };
    const code = typeof err.code === 'string' ? err.code : undefined;
    port.postMessage({ id: m.id, error: { name: err.name, message: err.message, code } } satisfies FromTokenizer);
  }
});
