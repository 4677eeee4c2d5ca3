/**
 * The playground's request for one model, in the prompt (completions) or chat shape, asking for each token's
 * logprobs so the stream names every token; and the tokens a stream chunk carries.
 */
export interface Settings {
  mode: 'prompt' | 'chat';
  prompt: string;
  system: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  /** null: none (each run samples afresh). */
  seed: number | null;
}

export function requestOf(model: string, s: Settings): { path: string; body: Record<string, unknown> } {
  const sampling = {
    model,
    max_tokens: s.maxTokens,
    temperature: s.temperature,
    top_p: s.topP,
    stream: true,
    ...(s.seed === null ? {} : { seed: s.seed }),
  };
  if (s.mode === 'prompt') return { path: '/v1/completions', body: { ...sampling, prompt: s.prompt, logprobs: 0 } };
  const messages = [
    ...(s.system.trim() ? [{ role: 'system', content: s.system }] : []),
    { role: 'user', content: s.prompt },
  ];
  return { path: '/v1/chat/completions', body: { ...sampling, messages, logprobs: true } };
}

export interface Chunk {
  error?: { message?: string };
  choices?: {
    finish_reason?: string | null;
    logprobs?: { tokens?: string[]; content?: { token: string }[] } | null;
  }[];
}

/** The tokens a stream chunk carries, in either API's logprobs shape. */
export function tokensOf(chunk: Chunk): string[] {
  const lp = chunk.choices?.[0]?.logprobs;
  if (!lp) return [];
  return lp.tokens ?? lp.content?.map((c) => c.token) ?? [];
}
