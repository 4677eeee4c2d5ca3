/**
 * One soak request over node:http, always bounded: a client-side timeout turns a hang into a counted
 * outcome, and a planned disconnect aborts before the response or after the first streamed tokens.
 * What came back (status, error code, streamed events, timings) is recorded; classify() judges it.
 */
import http from 'node:http';
import { SseParser } from '../../src/bench/sse.ts';

export type Abort = { when: 'before'; afterMs: number } | { when: 'after-first' };

export interface SoakRequest {
  /** What the request exercises: 'completion-stream', 'bad-adapter:fifo-weights', 'admin:load', … */
  kind: string;
  path: string;
  /** The raw body (malformed on purpose for some kinds). */
  body: string;
  contentType?: string;
  key: string | null;
  model?: string;
  stream: boolean;
  abort?: Abort;
  /** Statuses that are a correct answer; 2xx means a complete response is expected. */
  expect: number[];
  /** It names the adapter the server was told to fail (--inject-fault): a 5xx or error event is injected. */
  injected?: boolean;
}

export interface RawResponse {
  status: number | null;
  /** The error's `code` (or `type`) from an error body or an SSE error event. */
  errorCode: string | null;
  errorMessage: string | null;
  /** An error event inside a 2xx stream. */
  streamError: boolean;
  /** A stream ended with `data: [DONE]` (or a non-stream body parsed as JSON). */
  complete: boolean;
  abortedByClient: boolean;
  timedOut: boolean;
  networkError: string | null;
  startMs: number;
  firstTokenMs: number | null;
  endMs: number;
}

const MAX_BODY = 64 * 1024;

export class SoakClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs: number,
  ) {}

  close() {
    this.agent.destroy();
  }

  send(req: SoakRequest): Promise<RawResponse> {
    const raw: RawResponse = {
      status: null,
      errorCode: null,
      errorMessage: null,
      streamError: false,
      complete: false,
      abortedByClient: false,
      timedOut: false,
      networkError: null,
      startMs: performance.now(),
      firstTokenMs: null,
      endMs: 0,
    };
    const headers: Record<string, string | number> = {
      'content-type': req.contentType ?? 'application/json',
      'content-length': Buffer.byteLength(req.body),
    };
    if (req.key !== null) headers.authorization = `Bearer ${req.key}`;
    return new Promise((resolve) => {
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const finish = () => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        raw.endMs = performance.now();
        resolve(raw);
      };
      const hr = http.request(new URL(req.path, this.baseUrl), { method: 'POST', agent: this.agent, headers });
      const abort = () => {
        if (settled) return;
        raw.abortedByClient = true;
        hr.destroy();
        finish();
      };
      timers.push(
        setTimeout(() => {
          if (settled) return;
          raw.timedOut = true;
          hr.destroy();
          finish();
        }, this.timeoutMs),
      );
      if (req.abort?.when === 'before') timers.push(setTimeout(abort, req.abort.afterMs));
      hr.on('error', (e) => {
        if (!settled) raw.networkError = (e as NodeJS.ErrnoException).code ?? e.message;
        finish();
      });
      hr.on('response', (res) => {
        raw.status = res.statusCode ?? 0;
        const ok = raw.status >= 200 && raw.status < 300;
        const sse = ok && (res.headers['content-type'] ?? '').includes('text/event-stream') ? new SseParser() : null;
        let body = '';
        const onData = (data: string) => {
          if (data === '[DONE]') {
            raw.complete = true;
            return;
          }
          const payload = parseJson(data);
          if (isError(payload)) {
            raw.streamError = true;
            readError(raw, payload);
          } else if (raw.firstTokenMs === null && hasText(payload)) {
            raw.firstTokenMs = performance.now();
            if (req.abort?.when === 'after-first') abort();
          }
        };
        res.on('data', (chunk: Buffer) => {
          if (sse) for (const event of sse.push(chunk)) onData(event.data);
          else if (body.length < MAX_BODY) body += chunk.toString('utf8');
        });
        res.on('error', (e) => {
          if (!settled) raw.networkError = (e as NodeJS.ErrnoException).code ?? e.message;
          finish();
        });
        res.on('end', () => {
          if (sse) for (const event of sse.end()) onData(event.data);
          else {
            // A JSON body must parse (a cut-off one is truncated); admin routes answer text/plain.
            const json = (res.headers['content-type'] ?? '').includes('json');
            const payload = parseJson(body);
            if (isError(payload)) readError(raw, payload);
            else if (ok && (!json || payload !== undefined)) {
              raw.complete = true;
              raw.firstTokenMs ??= performance.now();
            }
            if (!ok && raw.errorMessage === null) raw.errorMessage = body.slice(0, 300);
          }
          finish();
        });
      });
      hr.end(req.body);
    });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface ErrorBody {
  error: { message?: string; code?: string | null; type?: string } | string;
}

function isError(payload: unknown): payload is ErrorBody {
  return typeof payload === 'object' && payload !== null && 'error' in payload;
}

function readError(raw: RawResponse, payload: ErrorBody) {
  const e = payload.error;
  if (typeof e === 'string') raw.errorMessage = e.slice(0, 300);
  else {
    raw.errorCode = e.code ?? e.type ?? null;
    raw.errorMessage = (e.message ?? '').slice(0, 300);
  }
}

function hasText(payload: unknown): boolean {
  const choices = (payload as { choices?: { text?: string; delta?: { content?: string } }[] })?.choices;
  return Array.isArray(choices) && choices.some((c) => (c.text ?? c.delta?.content ?? '').length > 0);
}
