/**
 * Tokenization on its own thread, for inputs large enough to hold the HTTP thread for a noticeable time
 * (tokenizing is linear at best, and much worse on pathological text such as one 100 KB "word"). The
 * thread builds the same tokenizer from the same files; it starts on first use and keeps no process alive
 * while idle.
 *
 *   const thread = new TokenizerThread(codec.tokenizer);
 *   const ids = await thread.encodeChat(messages);
 */
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../runtime/ts-worker.ts';
import type { ChatMessage } from './chat-template.ts';
import type { Tokenizer, TokenizerFiles, TokenizerOptions } from './tokenizer.ts';

/** What the thread builds its tokenizer from: a directory it reads itself, or files already parsed. */
export type TokenizerSource =
  | { dir: string; options: TokenizerOptions }
  | { files: TokenizerFiles; origin: string; options: TokenizerOptions };

export type TokenizeJob = { op: 'encode'; text: string } | { op: 'encodeChat'; messages: ChatMessage[] };
export type ToTokenizer = TokenizeJob & { id: number };
/** Errors cross as data: name, message and the error's own code (a ChatTemplateError's, for instance). */
export interface ThreadError {
  name: string;
  message: string;
  code?: string;
}
export type FromTokenizer = { id: number; ids: number[] } | { id: number; error: ThreadError };

export class TokenizerThread {
  private worker: Worker | null = null;
  private nextId = 0;
  /** Dropped by its owner: the thread ends as soon as no job is pending (and after any later one). */
  private retiring = false;
  private readonly pending = new Map<number, { resolve(ids: number[]): void; reject(e: Error): void }>();

  constructor(private readonly tokenizer: Tokenizer) {}

  encode(text: string): Promise<number[]> {
    return this.run({ op: 'encode', text });
  }

  /** The chat template with a generation prompt, encoded without adding special tokens again (as TextCodec). */
  encodeChat(messages: ChatMessage[]): Promise<number[]> {
    return this.run({ op: 'encodeChat', messages });
  }

  /** Ends the thread once the jobs in flight are answered, failing none of them. */
  retire() {
    this.retiring = true;
    if (this.pending.size === 0) void this.close();
  }

  async close() {
    const worker = this.worker;
    this.worker = null;
    this.failAll(new Error('the tokenizer thread is closed'));
    await worker?.terminate();
  }

  private run(job: TokenizeJob): Promise<number[]> {
    const worker = this.started();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...job, id } satisfies ToTokenizer);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    // Copying the parsed files to the thread takes the HTTP thread ~0.1–0.3 s (a 150k-token vocabulary):
    // from a directory, the thread reads them itself.
    const { files, origin, options, sourceDir } = this.tokenizer;
    const source: TokenizerSource = sourceDir ? { dir: sourceDir, options } : { files, origin, options };
    const worker = startTsWorker(new URL('./tokenizer-worker.ts', import.meta.url), source);
    worker.on('message', (m: FromTokenizer) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if ('ids' in m) p.resolve(m.ids);
      else p.reject(Object.assign(new Error(m.error.message), { name: m.error.name, code: m.error.code }));
      if (this.retiring && this.pending.size === 0) void this.close();
    });
    const died = (err: Error) => {
      if (this.worker !== worker && this.worker !== null) return; // an old thread (closed, replaced) ending
      this.worker = null; // the next job starts a fresh thread
      this.failAll(err);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`the tokenizer thread exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
