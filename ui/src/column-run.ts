/**
 * One playground column: a streaming completion (or chat completion) for one model, with its figures.
 * TTFT runs from sending the request to the first token; tokens/s is the decode rate after the first token.
 * Tokens come from the stream's logprobs (one entry per token), so counts and divergence are exact.
 */
import { postStream } from './api.ts';
import { type Chunk, requestOf, type Settings, tokensOf } from './completion-request.ts';
import { SseParser } from './sse.ts';

export interface ColumnState {
  model: string;
  status: 'waiting' | 'streaming' | 'done' | 'error';
  tokens: string[];
  ttftMs: number | null;
  tokensPerSecond: number | null;
  finishReason: string | null;
  error: string | null;
}

export function waitingColumn(model: string): ColumnState {
  return { model, status: 'waiting', tokens: [], ttftMs: null, tokensPerSecond: null, finishReason: null, error: null };
}

/** Runs the column's request, calling `update` with a new state after every chunk. */
export async function runColumn(
  model: string,
  settings: Settings,
  key: string,
  signal: AbortSignal,
  update: (s: ColumnState) => void,
): Promise<void> {
  let state = waitingColumn(model);
  const set = (next: Partial<ColumnState>) => {
    state = { ...state, ...next };
    update(state);
  };
  set({});
  const started = performance.now();
  let firstAt = 0;
  try {
    const { path, body } = requestOf(model, settings);
    const reader = (await postStream(path, key, body, signal)).getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    while (!parser.done) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.feed(decoder.decode(value, { stream: true })) as Chunk[]) {
        if (event.error) throw new Error(event.error.message ?? 'the stream failed');
        const tokens = tokensOf(event);
        const now = performance.now();
        if (tokens.length > 0 && state.ttftMs === null) {
          firstAt = now;
          set({ ttftMs: now - started, status: 'streaming' });
        }
        const all = [...state.tokens, ...tokens];
        const rate = all.length > 1 && now > firstAt ? ((all.length - 1) * 1000) / (now - firstAt) : null;
        set({
          tokens: all,
          tokensPerSecond: rate ?? state.tokensPerSecond,
          finishReason: event.choices?.[0]?.finish_reason ?? state.finishReason,
        });
      }
    }
    set({ status: 'done' });
  } catch (e) {
    set({ status: 'error', error: signal.aborted ? 'stopped' : (e as Error).message });
  }
}
