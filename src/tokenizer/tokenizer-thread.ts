/**
 * Tokenization on its own thread, for inputs large enough to hold the HTTP thread for a noticeable time
 * (tokenizing is linear at best, and much worse on pathological text such as one 100 KB "word"). The
 * thread builds the same tokenizer from the same files; it starts on first use and keeps no process alive
 * while idle.
 *
 * An adapter's own tokenizer is built there too (its files as text: parsing and building a 150k-token
 * tokenizer takes seconds, off the event loop), checked against the base, and its thread then encodes every
 * prompt of that adapter; `ready()` says when it is built, with what the HTTP thread decodes with.
 *
 *   const thread = new TokenizerThread(codec.tokenizer);
 *   const ids = await thread.encodeChat(messages);
 */
import type { Worker } from 'node:worker_threads';
import { deserializeError, type SerializedError } from '../observability/errors.ts';
import { startTsWorker } from '../runtime/ts-worker.ts';
import type { AdapterTokenizerTexts, BaseReference } from './adapter-tokenizer.ts';
import type { ChatMessage } from './chat-template.ts';
import { Tokenizer, type TokenizerFiles, type TokenizerOptions } from './tokenizer.ts';

/** What the thread builds its tokenizer from: a directory it reads itself, files already parsed, or an adapter's texts. */
export type TokenizerSource =
  | { dir: string; options: TokenizerOptions }
  | { files: TokenizerFiles; origin: string; options: TokenizerOptions }
  | { adapter: { name: string; texts: AdapterTokenizerTexts; base: BaseReference } };

export interface EncodeOptions {
  addSpecialTokens?: boolean;
}
export interface EncodeChatOptions {
  addGenerationPrompt?: boolean;
  addSpecialTokens?: boolean;
}
export type TokenizeJob =
  | ({ op: 'encode'; text: string } & EncodeOptions)
  | ({ op: 'encodeChat'; messages: ChatMessage[] } & EncodeChatOptions);
export type ToTokenizer = TokenizeJob & { id: number };
/** Errors cross as data: name, message and the error's own code (a ChatTemplateError's, for instance). */
export interface ThreadError {
  name: string;
  message: string;
  code?: string;
}
/** An adapter tokenizer built and checked: the HTTP thread's decoding copy is made from this. */
export interface AdapterTokenizerReady {
  /** tokenizer.json without what only encoding needs (adapter-tokenizer.ts: decodingJson). */
  decoding: string;
  tokenizerConfig: Record<string, unknown>;
  chatTemplate: string | null;
  /** Ids its requests stop on beyond the base's. */
  stopIds: number[];
}
/** The adapter build's answer carries this id. */
export const READY_ID = -1;
export type FromTokenizer =
  | { id: number; ids: number[] }
  | { id: number; error: ThreadError }
  | { id: typeof READY_ID; ready: AdapterTokenizerReady }
  | { id: typeof READY_ID; failed: SerializedError };

export class TokenizerThread {
  private worker: Worker | null = null;
  private nextId = 0;
  /** Dropped by its owner: the thread ends as soon as no job is pending (and after any later one). */
  private retiring = false;
  private readonly pending = new Map<number, { resolve(ids: number[]): void; reject(e: Error): void }>();
  private built: Promise<AdapterTokenizerReady> | null = null;
  private builtWaiter: { resolve(r: AdapterTokenizerReady): void; reject(e: Error): void } | null = null;

  /** The server's tokenizer (the thread builds the same), or a source (an adapter's tokenizer files). */
  constructor(private readonly source: Tokenizer | TokenizerSource) {}

  encode(text: string, options: EncodeOptions = {}): Promise<number[]> {
    return this.run({ op: 'encode', text, ...options });
  }

  /** The chat template (default: with a generation prompt, encoded without adding special tokens again, as TextCodec). */
  encodeChat(messages: ChatMessage[], options: EncodeChatOptions = {}): Promise<number[]> {
    return this.run({ op: 'encodeChat', messages, ...options });
  }

  /** An adapter source: starts the thread; resolves once its tokenizer is built and checked, else rejects with why. */
  ready(): Promise<AdapterTokenizerReady> {
    if (!this.built) {
      this.built = new Promise((resolve, reject) => {
        this.builtWaiter = { resolve, reject };
      });
      this.started().ref();
    }
    return this.built;
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

  private workerSource(): TokenizerSource {
    if (!(this.source instanceof Tokenizer)) return this.source;
    // Copying the parsed files to the thread takes the HTTP thread ~0.1–0.3 s (a 150k-token vocabulary):
    // from a directory, the thread reads them itself.
    const { files, origin, options, sourceDir } = this.source;
    return sourceDir ? { dir: sourceDir, options } : { files, origin, options };
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = startTsWorker(new URL('./tokenizer-worker.ts', import.meta.url), this.workerSource());
    worker.on('message', (m: FromTokenizer) => {
      if ('ready' in m || 'failed' in m) {
        if (this.pending.size === 0) worker.unref();
        const waiter = this.builtWaiter;
        this.builtWaiter = null;
        if ('ready' in m) waiter?.resolve(m.ready);
        else waiter?.reject(deserializeError(m.failed));
        return;
      }
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
    this.builtWaiter?.reject(err);
    this.builtWaiter = null;
  }
}
