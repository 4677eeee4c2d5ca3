/**
 * What the check asks each server, in token ids so that tokenization cannot blur the comparison:
 *   llama-server  POST /completion {prompt: ids, n_predict, n_probs: 20, return_tokens}: its greedy tokens
 *                 and, at every generated position, the top 20 of the raw softmax (n_probs ignores the
 *                 sampler chain unless post_sampling_probs is set);
 *   loraplex      POST /v1/completions {prompt: ids ++ those tokens, prompt_logprobs: 20, max_tokens: 1}: the
 *                 same positions' top 20, teacher-forced on llama.cpp's tokens (both conditioned on the same
 *                 prefix), and {prompt: ids, max_tokens, temperature: 0}: loraplex's own greedy text.
 * Tokenizers: /tokenize on both (llama.cpp renders chat through /apply-template first).
 */
import type { AgreementPrompt } from './prompts.ts';

/** One position's distribution: token id → log-probability, the top k only, most likely first. */
export type TopLogprobs = Map<number, number>;

async function post<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export interface LlamaGreedy {
  tokens: number[];
  text: string;
  /** true when generation ended on end-of-generation (the token itself is not in `tokens`). */
  stoppedOnEos: boolean;
  /** Per generated position (and the one that produced the EOS), the top k. */
  top: TopLogprobs[];
}

interface LlamaCompletion {
  content: string;
  tokens: number[];
  stop_type: string;
  completion_probabilities: { id: number; top_logprobs: { id: number; logprob: number }[] }[];
}

export async function llamaGreedy(url: string, ids: number[], maxTokens: number, k: number): Promise<LlamaGreedy> {
  const r = await post<LlamaCompletion>(`${url}/completion`, {
    prompt: ids,
    n_predict: maxTokens,
    n_probs: k,
    temperature: 0,
    return_tokens: true,
    cache_prompt: false,
    response_fields: ['content', 'tokens', 'stop_type', 'completion_probabilities'],
  });
  return {
    tokens: r.tokens,
    text: r.content,
    stoppedOnEos: r.stop_type === 'eos',
    top: r.completion_probabilities.map((p) => new Map(p.top_logprobs.map((t) => [t.id, t.logprob]))),
  };
}

export async function llamaTokenize(url: string, prompt: AgreementPrompt): Promise<number[]> {
  const content =
    prompt.kind === 'text'
      ? prompt.text
      : (await post<{ prompt: string }>(`${url}/apply-template`, { messages: prompt.messages })).prompt;
  return (await post<{ tokens: number[] }>(`${url}/tokenize`, { content, add_special: false, parse_special: true }))
    .tokens;
}

export async function loraplexTokenize(url: string, model: string, prompt: AgreementPrompt): Promise<number[]> {
  const body =
    prompt.kind === 'text'
      ? { model, prompt: prompt.text, add_special_tokens: false }
      : { model, messages: prompt.messages, add_generation_prompt: true };
  return (await post<{ tokens: number[] }>(`${url}/tokenize`, body)).tokens;
}

type PromptLogprobs = (Record<string, { logprob: number; rank: number }> | null)[];

/**
 * loraplex's top k at positions prompt.length .. prompt.length + forced.length - 1 (the distribution each
 * forced token was drawn from), from vLLM's prompt_logprobs over prompt ++ forced.
 */
export async function loraplexForced(
  url: string,
  model: string,
  prompt: number[],
  forced: number[],
  k: number,
): Promise<TopLogprobs[]> {
  const r = await post<{ choices: { prompt_logprobs: PromptLogprobs }[] }>(`${url}/v1/completions`, {
    model,
    prompt: [...prompt, ...forced],
    max_tokens: 1,
    temperature: 0,
    prompt_logprobs: k,
  });
  const entries = r.choices[0].prompt_logprobs.slice(prompt.length);
  return entries.map((e) => {
    // Each entry holds the top k (rank ≤ k) and the forced token itself at its own rank: keep the top k.
    const top = Object.entries(e ?? {})
      .filter(([, v]) => v.rank >= 1 && v.rank <= k)
      .sort((a, b) => a[1].rank - b[1].rank);
    return new Map(top.map(([id, v]) => [Number(id), v.logprob]));
  });
}

export async function loraplexGreedy(url: string, model: string, prompt: number[], maxTokens: number) {
  const r = await post<{ choices: { text: string; finish_reason: string }[]; usage: { completion_tokens: number } }>(
    `${url}/v1/completions`,
    { model, prompt, max_tokens: maxTokens, temperature: 0 },
  );
  return { text: r.choices[0].text, tokens: r.usage.completion_tokens, finish: r.choices[0].finish_reason };
}

export async function servedModel(url: string): Promise<string> {
  const r = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  return r.data[0].id;
}
