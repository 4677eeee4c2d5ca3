/**
 * The soak's request mix, drawn from one seeded PRNG so a run repeats its mix: completions and chat,
 * streaming and not, over Zipf-popular store adapters, runtime-loaded adapters and the base; now and then a
 * broken adapter, a planned disconnect or a bad request — each with the answer a correct server gives.
 *
 *   const mix = new TrafficMix({ seed: 1, base: 'soak-base', store, apiKey, contextTokens: 4096, … });
 *   const req = mix.next();   // a SoakRequest with its expected statuses
 */
import { createModelSelector, type ModelSelector } from '../../src/bench/adapter-selection.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import type { SoakRequest } from './http.ts';
import type { BadKind } from './store-writer.ts';

/** Relative weights of each kind of request in the mix. */
export const MIX = {
  'completion-stream': 30,
  completion: 14,
  'chat-stream': 22,
  chat: 10,
  'disconnect-after-first': 5,
  'disconnect-before': 4,
  'bad-adapter': 6,
  'bad-request': 9,
} as const;
export type MixKind = keyof typeof MIX;

export const BAD_REQUESTS = [
  'malformed-json',
  'unknown-model',
  'too-long-prompt',
  'prompt-over-bytes',
  'negative-temperature',
  'string-max-tokens',
  'top-p-above-1',
  'n-zero',
  'unsupported-logit-bias',
  'no-api-key',
  'wrong-api-key',
  'text-content-type',
] as const;

export interface TrafficOptions {
  seed: number;
  base: string;
  storeAdapters: string[];
  badAdapters: { name: string; kind: BadKind }[];
  apiKey: string;
  contextTokens: number;
  maxPromptBytes: number;
  zipfAlpha?: number;
  /** The adapter the server was told to fail (--inject-fault adapter:NAME): its requests may fail. */
  faultyAdapter?: string;
  /** Runtime-loaded adapters that may be requested now (kept by the admin lane). */
  uploaded: () => string[];
}

const WORDS =
  'the quick brown fox jumps over a lazy dog while seven wizards quietly hex jovial kings near old mossy bridges and rivers under amber skies'.split(
    ' ',
  );

export class TrafficMix {
  private readonly rng: BenchRandom;
  private readonly pickStore: ModelSelector;
  private readonly kinds: MixKind[];
  private readonly cumulative: number[];
  private badRequestTurn = 0;

  constructor(private readonly o: TrafficOptions) {
    this.rng = new BenchRandom(o.seed).fork(1);
    this.pickStore = createModelSelector('zipf', o.storeAdapters, new BenchRandom(o.seed).fork(2), o.zipfAlpha ?? 1);
    this.kinds = Object.keys(MIX) as MixKind[];
    let sum = 0;
    this.cumulative = this.kinds.map((k) => (sum += MIX[k]));
  }

  next(): SoakRequest {
    const u = this.rng.next() * this.cumulative[this.cumulative.length - 1];
    const kind = this.kinds[this.cumulative.findIndex((c) => u < c)];
    switch (kind) {
      case 'bad-adapter':
        return this.badAdapter();
      case 'bad-request':
        return this.badRequest();
      case 'disconnect-after-first':
        return { ...this.generation(true, this.rng.next() < 0.5, 48), kind, abort: { when: 'after-first' } };
      case 'disconnect-before':
        return {
          ...this.generation(true, this.rng.next() < 0.5, 48),
          kind,
          abort: { when: 'before', afterMs: this.rng.int(40) },
        };
      default:
        return this.generation(kind.endsWith('-stream'), kind.startsWith('chat'));
    }
  }

  /** The base (~15 %), a runtime-loaded adapter (~15 % when any), else a Zipf-popular store adapter. */
  model(): string {
    const u = this.rng.next();
    if (u < 0.15) return this.o.base;
    const uploaded = this.o.uploaded();
    if (u < 0.3 && uploaded.length > 0) return uploaded[this.rng.int(uploaded.length)];
    return this.pickStore();
  }

  private prompt(words: number): string {
    return Array.from({ length: words }, () => WORDS[this.rng.int(WORDS.length)]).join(' ');
  }

  private generation(stream: boolean, chat: boolean, maxTokens = 4 + this.rng.int(44), model = this.model()) {
    const text = this.prompt(4 + this.rng.int(120));
    const body: Record<string, unknown> = {
      model,
      max_tokens: maxTokens,
      temperature: this.rng.next() < 0.5 ? 0 : 0.8,
      seed: this.rng.int(1000),
      ignore_eos: this.rng.next() < 0.7,
      stream,
    };
    if (stream) body.stream_options = { include_usage: true };
    if (chat) body.messages = [{ role: 'user', content: text }];
    else body.prompt = text;
    // An adapter failing in the engine fails its own requests (5xx or an error event), then is refused (400).
    const faulty = model === this.o.faultyAdapter;
    return {
      ...(faulty ? { injected: true } : {}),
      kind: `${chat ? 'chat' : 'completion'}${stream ? '-stream' : ''}`,
      path: chat ? '/v1/chat/completions' : '/v1/completions',
      body: JSON.stringify(body),
      key: this.o.apiKey,
      model,
      stream,
      expect: faulty ? [200, 400] : [200],
    } satisfies SoakRequest;
  }

  private badAdapter(): SoakRequest {
    const bad = this.o.badAdapters[this.rng.int(this.o.badAdapters.length)];
    const req = this.generation(this.rng.next() < 0.5, this.rng.next() < 0.5, 8, bad.name);
    // The store does not list a folder whose config leads out of it (local-dir-store.ts): 404, by design.
    const expect = bad.kind === 'config-symlink-out' ? [400, 404] : [400];
    return { ...req, kind: `bad-adapter:${bad.kind}`, expect };
  }

  private badRequest(): SoakRequest {
    const which = BAD_REQUESTS[this.badRequestTurn++ % BAD_REQUESTS.length];
    const good = { model: this.o.base, prompt: 'hello there', max_tokens: 4 };
    const req = (body: unknown, expect: number[], extra: Partial<SoakRequest> = {}): SoakRequest => ({
      kind: `bad-request:${which}`,
      path: '/v1/completions',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      key: this.o.apiKey,
      model: this.o.base,
      stream: false,
      expect,
      ...extra,
    });
    switch (which) {
      case 'malformed-json':
        return req('{"model": "x", "prompt": "unterminated', [400]);
      case 'unknown-model':
        return req({ ...good, model: 'no-such-adapter' }, [404]);
      case 'too-long-prompt':
        return req({ ...good, prompt: this.prompt(this.o.contextTokens + 64) }, [400]);
      case 'prompt-over-bytes':
        return req({ ...good, prompt: 'x'.repeat(this.o.maxPromptBytes + 1) }, [400, 413]);
      case 'negative-temperature':
        return req({ ...good, temperature: -1 }, [400]);
      case 'string-max-tokens':
        return req({ ...good, max_tokens: '10' }, [400]);
      case 'top-p-above-1':
        return req({ ...good, top_p: 2 }, [400]);
      case 'n-zero':
        return req({ ...good, n: 0 }, [400]);
      case 'unsupported-logit-bias':
        return req({ ...good, logit_bias: { '1': 5 } }, [400]);
      case 'no-api-key':
        return req(good, [401], { key: null });
      case 'wrong-api-key':
        return req(good, [401], { key: 'not-the-key' });
      case 'text-content-type':
        return req(JSON.stringify(good), [415], { contentType: 'text/plain' });
    }
  }
}
