/**
 * The engine's logprobs (token ids and numbers) in the two OpenAI shapes, tokens named as vLLM names them:
 * each token decoded alone, special tokens kept.
 *
 *   completions: { tokens, token_logprobs, top_logprobs: [{ token: logprob }], text_offset }
 *   chat:        { content: [{ token, logprob, bytes, top_logprobs: [{ token, logprob, bytes }] }] }
 */
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { TokenDecoder } from '../tokenizer/detokenizer.ts';

/** Token id → its text alone (decode([id])), cached: the vocabulary bounds the cache. */
export class TokenTexts {
  private readonly cache = new Map<number, string>();

  constructor(private readonly tokenizer: TokenDecoder) {}

  of(id: number): string {
    let text = this.cache.get(id);
    if (text === undefined) {
      text = this.tokenizer.decode([id], { skipSpecialTokens: false });
      this.cache.set(id, text);
    }
    return text;
  }
}

/** JSON has no -Infinity; OpenAI and vLLM send -9999 for an impossible token. */
function finite(logprob: number): number {
  return Math.max(logprob, -9999);
}

/** Characters as Python counts them (code points), for text_offset. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export interface CompletionLogprobs {
  tokens: string[];
  /** null for an echoed prompt's first token (nothing precedes it). */
  token_logprobs: (number | null)[];
  /** Per token: the sampled token first, then the top k (so up to k + 1 entries, as OpenAI documents). */
  top_logprobs: (Record<string, number> | null)[];
  /** Where each token starts, counting the characters of the tokens before it. */
  text_offset: number[];
}

/** Completions' logprobs of one choice, built chunk by chunk (or once): offsets continue across calls. */
export class CompletionLogprobsBuilder {
  private offset = 0;

  constructor(private readonly names: TokenTexts) {}

  /** `logprobs` aligned with `tokens`; a null entry (an echoed prompt's first token) has no logprob. */
  build(tokens: readonly number[], logprobs: readonly (TokenLogprobs | null)[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    tokens.forEach((id, i) => {
      const lp = logprobs[i];
      const token = this.names.of(id);
      if (lp === null) {
        out.tokens.push(token);
        out.token_logprobs.push(null);
        out.top_logprobs.push(null);
        out.text_offset.push(this.offset);
        this.offset += codePoints(token);
        return;
      }
      const top: Record<string, number> = { [token]: finite(lp.logprob) };
      lp.topIds.forEach((topId, j) => {
        const name = this.names.of(topId);
        if (!(name in top)) top[name] = finite(lp.topLogprobs[j]);
      });
      out.tokens.push(token);
      out.token_logprobs.push(finite(lp.logprob));
      out.top_logprobs.push(top);
      out.text_offset.push(this.offset);
      this.offset += codePoints(token);
    });
    return out;
  }
}

/** vLLM's prompt_logprobs entry: per token id (as a JSON key), its logprob, rank and text. */
export type PromptLogprobEntry = Record<string, { logprob: number; rank: number; decoded_token: string }>;

/** vLLM's prompt_logprobs: null for the first prompt token, then the token itself and the top k at each position. */
export function promptLogprobs(
  names: TokenTexts,
  promptIds: readonly number[],
  logprobs: readonly (TokenLogprobs | null)[],
): (PromptLogprobEntry | null)[] {
  return promptIds.map((id, p) => {
    const lp = logprobs[p];
    if (!lp) return null;
    const entry: PromptLogprobEntry = {};
    lp.topIds.forEach((topId, j) => {
      entry[topId] = { logprob: finite(lp.topLogprobs[j]), rank: j + 1, decoded_token: names.of(topId) };
    });
    entry[id] = { logprob: finite(lp.logprob), rank: lp.rank ?? 0, decoded_token: names.of(id) };
    return entry;
  });
}

export interface ChatLogprob {
  token: string;
  logprob: number;
  /** The token's UTF-8 bytes. */
  bytes: number[];
}

export interface ChatLogprobs {
  content: (ChatLogprob & { top_logprobs: ChatLogprob[] })[];
}

/** Chat's logprobs: per token its own entry and the top k (top_logprobs), most likely first. */
export function chatLogprobs(
  names: TokenTexts,
  tokens: readonly number[],
  logprobs: readonly TokenLogprobs[],
): ChatLogprobs {
  const entry = (id: number, logprob: number): ChatLogprob => {
    const token = names.of(id);
    return { token, logprob: finite(logprob), bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: tokens.map((id, i) => ({
      ...entry(id, logprobs[i].logprob),
      top_logprobs: logprobs[i].topIds.map((topId, j) => entry(topId, logprobs[i].topLogprobs[j])),
    })),
  };
}
