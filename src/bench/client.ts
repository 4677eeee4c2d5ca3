/**
 * One timed request over node:http(s). The clock starts just before the request is written; every SSE
 * event is stamped with the arrival time of the network chunk that completed it (as AIPerf stamps them).
 */
import http from 'node:http';
import https from 'node:https';
import {
  type EndpointConfig,
  endpointUrl,
  type RequestSpec,
  requestBody,
  requestHeaders,
  responseError,
  responseText,
  responseUsage,
} from './endpoint.ts';
import type { RequestError, RequestRecord, Usage } from './record.ts';
import { SseParser } from './sse.ts';

export interface ClientOptions {
  endpoint: EndpointConfig;
  /** Counts output tokens when the server sends no usage. */
  countTokens: (text: string) => number;
  requestTimeoutMs: number;
  now?: () => number;
}

/** Sends requests over kept-alive connections (one per request in flight). */
export class BenchClient {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string>;
  private readonly now: () => number;

  constructor(private readonly options: ClientOptions) {
    this.url = new URL(endpointUrl(options.endpoint));
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: options.endpoint.keepAlive ?? true, maxSockets: Number.POSITIVE_INFINITY });
    this.headers = requestHeaders(options.endpoint);
    this.now = options.now ?? (() => performance.now());
  }

  close() {
    this.agent.destroy();
  }

  send(spec: RequestSpec, index: number, signal?: AbortSignal): Promise<RequestRecord> {
    const payload = JSON.stringify(requestBody(this.options.endpoint, spec));
    const transport = this.url.protocol === 'https:' ? https : http;
    const state = new ResponseState(spec, index, this.now);
    return new Promise<RequestRecord>((resolve) => {
      let settled = false;
      const finish = (error: RequestError | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(state.record(error, this.options.countTokens));
      };
      const onAbort = () => {
        finish({ kind: 'cancelled', message: 'cancelled after the benchmark duration and grace period' });
        req.destroy();
      };
      state.startMs = this.now();
      const req = transport.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: { ...this.headers, 'content-length': Buffer.byteLength(payload) },
      });
      const timer = setTimeout(() => {
        finish({ kind: 'network', message: `no complete response within ${this.options.requestTimeoutMs} ms` });
        req.destroy();
      }, this.options.requestTimeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => finish({ kind: 'network', message: e.message }));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const isStream = (res.headers['content-type'] ?? '').includes('text/event-stream');
        const sse = isStream ? new SseParser() : null;
        const body: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (!sse || status < 200 || status >= 300) return void body.push(chunk);
          const at = this.now();
          for (const event of sse.push(chunk)) state.event(event.data, at);
        });
        res.on('error', (e) => finish({ kind: 'network', message: e.message }));
        res.on('end', () => {
          const at = this.now();
          if (status < 200 || status >= 300) {
            return finish({
              kind: 'http',
              status,
              message: errorMessage(status, Buffer.concat(body).toString('utf8')),
            });
          }
          if (sse) for (const event of sse.end()) state.event(event.data, at);
          else state.body(Buffer.concat(body).toString('utf8'), at);
          state.endMs = at;
          finish(state.error);
        });
      });
      req.end(payload);
    });
  }
}

/** What has arrived of one response so far. */
class ResponseState {
  startMs = 0;
  endMs = 0;
  firstContentMs: number | null = null;
  lastContentMs: number | null = null;
  contentResponses = 0;
  text = '';
  usage: Usage | null = null;
  error: RequestError | null = null;

  constructor(
    private readonly spec: RequestSpec,
    private readonly index: number,
    private readonly now: () => number,
  ) {}

  event(data: string, at: number) {
    if (data === '[DONE]' || this.error) return;
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      this.error = { kind: 'stream', message: `an SSE event is not JSON: ${data.slice(0, 200)}` };
      return;
    }
    this.payload(payload, at);
  }

  body(text: string, at: number) {
    try {
      this.payload(JSON.parse(text), at);
    } catch {
      this.error = { kind: 'stream', message: `the response is not JSON: ${text.slice(0, 200)}` };
    }
  }

  private payload(payload: unknown, at: number) {
    const error = responseError(payload);
    if (error !== null) {
      this.error = { kind: 'stream', message: error };
      return;
    }
    this.usage = responseUsage(payload) ?? this.usage;
    const text = responseText(payload);
    if (text.length === 0) return;
    this.text += text;
    this.contentResponses++;
    this.firstContentMs ??= at;
    this.lastContentMs = at;
  }

  record(error: RequestError | null, countTokens: (text: string) => number): RequestRecord {
    if (this.endMs === 0) this.endMs = this.now();
    const ok = error === null;
    const fromUsage = ok && this.usage !== null;
    const outputTokens = !ok ? null : fromUsage ? (this.usage as Usage).completionTokens : countTokens(this.text);
    return {
      index: this.index,
      model: this.spec.model,
      startMs: this.startMs,
      firstContentMs: this.firstContentMs,
      lastContentMs: this.lastContentMs,
      endMs: this.endMs,
      contentResponses: this.contentResponses,
      inputTokens: this.spec.inputTokens,
      requestedOutputTokens: this.spec.maxTokens,
      usage: this.usage,
      outputTokens,
      outputTokensSource: outputTokens === null ? null : fromUsage ? 'usage' : 'tokenizer',
      error: error ?? (this.contentResponses === 0 ? { kind: 'empty', message: 'the response carried no text' } : null),
    };
  }
}

function errorMessage(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    const message = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message);
    if (message) return `HTTP ${status}: ${message}`;
  } catch {
    // not JSON: show the text
  }
  return `HTTP ${status}: ${body.slice(0, 200) || 'no body'}`;
}
