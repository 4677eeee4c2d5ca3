/**
 * The tokenizer a request runs with: the base model's, or the one its adapter ships beside its weights
 * (tokenizer.json and friends in the adapter's directory: added tokens, its own chat template, its eos).
 * Everything text-shaped follows it: prompt encoding (inline or on the tokenizer's own thread), the chat
 * template, streamed detokenizing, stop strings, logprobs' token strings, /tokenize and /detokenize.
 *
 * Adapter tokenizers are keyed by the adapter's version (`name@version`): loaded on the first request that
 * needs one (concurrent requests share the load). Its files are read here (async, contained); parsing,
 * building and checking run on the adapter's own tokenizer thread, which then encodes all its prompts; the
 * HTTP thread keeps a decoding-only copy (no BPE merges: a fraction of the build) for streamed text and token
 * names. At most MAX_ADAPTER_TOKENIZERS are kept (least recently used dropped), and each is dropped once the
 * engine no longer lists its version (unloaded, replaced, gone from the store). An adapter without tokenizer.json uses the base's. A broken one fails that adapter's requests with
 * a 400 naming the adapter and the file; the base and other adapters are untouched. One instance per server
 * context, shared by the routes.
 *
 *   const tk = await requestTokenizers(ctx).forModel(adapter); // adapter: resolveModel's answer
 *   const ids = await tk.prompts.chat(messages);
 */
import type { AdapterInfo } from '../adapters/cache/adapter-manager.ts';
import { type BaseReference, baseReference, decodingTokenizer } from '../tokenizer/adapter-tokenizer.ts';
import { type TextCodec, textCodec } from '../tokenizer/text-codec.ts';
import { TokenizerThread } from '../tokenizer/tokenizer-thread.ts';
import { readAdapterTokenizerTexts } from './adapter-tokenizer-files.ts';
import type { ServerContext } from './context.ts';
import { TokenTexts } from './logprobs.ts';
import { PROMPT_BYTES_PER_TOKEN, PromptEncoder, type PromptEncoderOptions } from './prompt-input.ts';

/** Adapter tokenizers kept at once: each holds a vocabulary (tens of MB for a 150k one) and maybe a thread. */
export const MAX_ADAPTER_TOKENIZERS = 4;

export interface RequestTokenizer {
  /** Whose tokenizer: null for the base model's. */
  adapter: string | null;
  codec: TextCodec;
  prompts: PromptEncoder;
  /** Token ids → their text alone (logprobs). */
  names: TokenTexts;
  /** Ids that end generation for these requests on top of the model's eos ids (an adapter's own eos). */
  stopIds: number[];
}

const perContext = new WeakMap<ServerContext, RequestTokenizers>();

/** The context's one RequestTokenizers (made on first use). */
export function requestTokenizers(ctx: ServerContext): RequestTokenizers {
  let tokenizers = perContext.get(ctx);
  if (!tokenizers) {
    tokenizers = new RequestTokenizers(ctx);
    perContext.set(ctx, tokenizers);
  }
  return tokenizers;
}

export class RequestTokenizers {
  private readonly base: RequestTokenizer;
  /** Adapter version → its tokenizer (null: it ships none), in least-recently-used order. */
  private readonly adapters = new Map<string, Promise<RequestTokenizer | null>>();
  /** Versions known to ship no tokenizer: cheap, bounded by the engine's listing (pruned with it). */
  private readonly without = new Set<string>();
  private listing: readonly AdapterInfo[] | null = null;
  private facts: BaseReference | null = null;

  constructor(
    private readonly ctx: ServerContext,
    private readonly max = MAX_ADAPTER_TOKENIZERS,
  ) {
    this.base = this.bundle(null, ctx.codec, []);
  }

  /** The tokenizer for `adapter` (null: the base model). Rejects with the adapter's tokenizer error. */
  async forModel(adapter: string | null): Promise<RequestTokenizer> {
    if (adapter === null) return this.base;
    this.prune();
    const info = this.ctx.engine.adapters.find((a) => a.name === adapter);
    if (!info?.files) return this.base;
    const key = `${info.name}@${info.version}`;
    if (this.without.has(key)) return this.base;
    let entry = this.adapters.get(key);
    if (entry)
      this.adapters.delete(key); // re-inserted last: most recently used
    else entry = this.load(info.name, info.files);
    this.adapters.set(key, entry);
    this.evict();
    const tokenizer = await entry.catch((e: unknown) => {
      // A bad file stays bad until a new version; anything else (a thread that died) is tried again.
      const status = (e as { status?: number })?.status;
      if (!(status !== undefined && status < 500) && this.adapters.get(key) === entry) this.adapters.delete(key);
      throw e;
    });
    if (tokenizer !== null) return tokenizer;
    this.without.add(key);
    if (this.adapters.get(key) === entry) this.adapters.delete(key);
    return this.base;
  }

  /** Adapter tokenizers held now (for tests and metrics). */
  get size(): number {
    return this.adapters.size;
  }

  async close() {
    const held = [...this.adapters.values()];
    this.adapters.clear();
    this.without.clear();
    await this.base.prompts.close();
    for (const entry of held) await entry.then((t) => t?.prompts.close()).catch(() => {});
  }

  private async load(name: string, files: { dir: string; root?: string }): Promise<RequestTokenizer | null> {
    const texts = await readAdapterTokenizerTexts(name, files.dir, files.root);
    if (texts === null) return null;
    this.facts ??= baseReference(this.ctx.codec.tokenizer, this.ctx.engine.info.vocabSize);
    const thread = new TokenizerThread({ adapter: { name, texts, base: this.facts } });
    try {
      const ready = await thread.ready();
      const tokenizerJson = JSON.parse(ready.decoding);
      await new Promise((resolve) => setImmediate(resolve)); // parsing and building: two shorter stalls, not one
      const { tokenizerConfig, chatTemplate } = ready;
      const decoding = decodingTokenizer(name, { tokenizerJson, tokenizerConfig, chatTemplate }, this.facts);
      // Every prompt of this adapter is encoded on its thread: the decoding copy cannot encode.
      return this.bundle(name, textCodec(decoding), ready.stopIds, { thread, inlineBytes: -1 });
    } catch (e) {
      await thread.close();
      throw e;
    }
  }

  private bundle(
    adapter: string | null,
    codec: TextCodec,
    stopIds: number[],
    encoding?: PromptEncoderOptions,
  ): RequestTokenizer {
    const ctx = this.ctx;
    const maxPromptBytes = () => ctx.limits?.maxPromptBytes ?? PROMPT_BYTES_PER_TOKEN * ctx.engine.info.maxModelLen;
    return {
      adapter,
      codec,
      prompts: new PromptEncoder(codec, maxPromptBytes, encoding),
      names: new TokenTexts(codec.tokenizer),
      stopIds,
    };
  }

  /** Versions the engine no longer lists are dropped (their threads end once idle). */
  private prune() {
    const listing = this.ctx.engine.adapters;
    if (listing === this.listing) return;
    this.listing = listing;
    const live = new Set(listing.map((a) => `${a.name}@${a.version}`));
    for (const key of [...this.adapters.keys()]) if (!live.has(key)) this.drop(key);
    for (const key of [...this.without]) if (!live.has(key)) this.without.delete(key);
  }

  private evict() {
    while (this.adapters.size > this.max) this.drop(this.adapters.keys().next().value as string);
  }

  private drop(key: string) {
    const entry = this.adapters.get(key);
    this.adapters.delete(key);
    // Requests that already hold it finish with it; its thread ends after their prompts.
    entry?.then((t) => t?.prompts.retire()).catch(() => {});
  }
}
