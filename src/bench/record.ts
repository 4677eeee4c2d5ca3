/** What the client saw of one request: timestamps on the performance clock (ms), token counts, error. */
export type ErrorKind = 'http' | 'network' | 'stream' | 'empty' | 'cancelled';

export interface RequestError {
  kind: ErrorKind;
  /** HTTP status, for kind 'http'. */
  status?: number;
  message: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface RequestRecord {
  /** Issue order within its run (warm-up excluded). */
  index: number;
  model: string;
  /** Just before the request was written. */
  startMs: number;
  /** Arrival of the first response carrying content (text); empty role-only or usage-only chunks do not count. */
  firstContentMs: number | null;
  /** Arrival of the last response carrying content. */
  lastContentMs: number | null;
  /** The response was read to its end (or failed). */
  endMs: number;
  /** Responses (SSE events, or the one JSON body) that carried content. */
  contentResponses: number;
  /** The prompt's length by the benchmark's tokenizer (AIPerf's input_sequence_length). */
  inputTokens: number;
  /** max_tokens asked for, or null when the request left it to the server. */
  requestedOutputTokens: number | null;
  /** The server's `usage`, when it sent one. */
  usage: Usage | null;
  /** usage.completion_tokens, or the tokenizer's count of the text when the server sent no usage. */
  outputTokens: number | null;
  outputTokensSource: 'usage' | 'tokenizer' | null;
  error: RequestError | null;
}

export function isValid(r: RequestRecord): boolean {
  return r.error === null && r.lastContentMs !== null;
}
