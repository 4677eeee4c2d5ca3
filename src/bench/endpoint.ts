/**
 * The OpenAI-compatible endpoint under test: where requests go, what their bodies hold, and where the
 * generated text sits in a response. Works with loraplex, vLLM, NIM, llama.cpp's server and others.
 */
export const ENDPOINT_TYPES = ['chat', 'completions'] as const;
export type EndpointType = (typeof ENDPOINT_TYPES)[number];

export interface ChatMessage {
  role: string;
  content: string;
}

export type PromptInput = { text: string } | { messages: ChatMessage[] };

export interface RequestSpec {
  model: string;
  prompt: PromptInput;
  /** Prompt length by the benchmark's tokenizer. */
  inputTokens: number;
  /** null: let the server decide (no max_tokens sent). */
  maxTokens: number | null;
}

export interface EndpointConfig {
  /** Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted and dropped). */
  url: string;
  endpointType: EndpointType;
  /** Overrides the path (default /v1/chat/completions or /v1/completions). */
  endpointPath?: string | null;
  apiKey?: string | null;
  streaming: boolean;
  /** Send min_tokens = max_tokens and ignore_eos so every answer has exactly the asked length. */
  fixOutputLength: boolean;
  /** Extra fields merged into every body (AIPerf's --extra-inputs). */
  extraInputs?: Record<string, unknown>;
  /** Last say over each body, per request: e.g. llama.cpp's server picks an adapter by a `lora` field, not `model`. */
  shapeBody?: BodyShaper | null;
  /** Reuse connections (default). Off: one connection per request, for servers that close a kept-alive
   * connection after a streamed answer, which a reused socket then reports as 'socket hang up'. */
  keepAlive?: boolean;
}

export type BodyShaper = (body: Record<string, unknown>, spec: RequestSpec) => Record<string, unknown>;

/** 'localhost:8000/v1/' → 'http://localhost:8000'. */
export function serverRoot(url: string): string {
  let root = url.includes('://') ? url : `http://${url}`;
  root = root.replace(/\/+$/, '');
  if (root.endsWith('/v1')) root = root.slice(0, -3);
  return root;
}

export function endpointUrl(config: EndpointConfig): string {
  const path = config.endpointPath ?? (config.endpointType === 'chat' ? '/v1/chat/completions' : '/v1/completions');
  return `${serverRoot(config.url)}${path.startsWith('/') ? path : `/${path}`}`;
}

export function requestHeaders(config: Pick<EndpointConfig, 'apiKey'>): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (config.apiKey) headers.authorization = `Bearer ${config.apiKey}`;
  return headers;
}

export function requestBody(config: EndpointConfig, spec: RequestSpec): Record<string, unknown> {
  const body: Record<string, unknown> = { model: spec.model };
  if (config.endpointType === 'chat') {
    body.messages = 'messages' in spec.prompt ? spec.prompt.messages : [{ role: 'user', content: spec.prompt.text }];
  } else {
    body.prompt = 'text' in spec.prompt ? spec.prompt.text : spec.prompt.messages.map((m) => m.content).join('\n');
  }
  if (spec.maxTokens !== null) {
    body.max_tokens = spec.maxTokens;
    if (config.fixOutputLength) {
      body.min_tokens = spec.maxTokens;
      body.ignore_eos = true;
    }
  }
  if (config.streaming) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  const merged = { ...body, ...config.extraInputs };
  return config.shapeBody ? config.shapeBody(merged, spec) : merged;
}

/** The text one response (a stream chunk or a whole body) carries: content, reasoning, or completion text. */
export function responseText(payload: unknown): string {
  const choice = (payload as { choices?: unknown[] } | null)?.choices?.[0] as Record<string, unknown> | undefined;
  if (!choice) return '';
  const parts: string[] = [];
  for (const holder of [choice.delta, choice.message]) {
    if (holder && typeof holder === 'object') {
      const h = holder as Record<string, unknown>;
      for (const key of ['content', 'reasoning_content', 'reasoning']) {
        if (typeof h[key] === 'string') parts.push(h[key] as string);
      }
    }
  }
  if (typeof choice.text === 'string') parts.push(choice.text);
  return parts.join('');
}

export function responseUsage(payload: unknown): { promptTokens: number; completionTokens: number } | null {
  const usage = (payload as { usage?: Record<string, unknown> } | null)?.usage;
  if (!usage || typeof usage.completion_tokens !== 'number') return null;
  return {
    promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0,
    completionTokens: usage.completion_tokens,
  };
}

/** An error object a server sent inside a 200 stream. */
export function responseError(payload: unknown): string | null {
  const error = (payload as { error?: unknown } | null)?.error;
  if (error === undefined || error === null) return null;
  if (typeof error === 'string') return error;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' ? message : JSON.stringify(error);
}
