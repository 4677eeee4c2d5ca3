/**
 * One HTTP request as operators see it: its timings go to the metrics (TTFT, inter-token latency, e2e), its
 * response to the status counters, and, when it ran on the engine or failed, one log line. The line holds
 * names, counts and times, never prompt or output text.
 *
 *   const trace = new RequestTrace(metrics, log, { id: 'req-1', route: '/v1/completions', method: 'POST' });
 *   trace.generating(adapter, promptIds.length, n);  // per prompt, as it goes to the engine with n choices
 *   trace.token(choiceIndex);                        // per token event
 *   trace.choiceFinished(choiceIndex, adapter, completionTokens, finishReason);
 *   trace.end(200);                                  // when the response has gone out
 *
 * A client that leaves ends the response before its choices are aborted: the record waits for them.
 */
import type { ServeLog } from './log.ts';
import type { Metrics } from './metrics.ts';

export type RequestLog = Pick<ServeLog, 'info'>;

export interface RequestOrigin {
  /** The server's id for the request (fastify's req.id). */
  id: string;
  /** The matched route's pattern (null: no route matched). */
  route: string | null;
  method: string;
}

/** Methods kept as a label; anything else is counted as 'other' (the label set stays small). */
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

interface ChoiceTiming {
  first: number;
  last: number;
}

export class RequestTrace {
  private readonly started: number;
  private adapter: string | null = null;
  private prompts = 0;
  private promptTokens = 0;
  private completionTokens = 0;
  private firstToken: number | null = null;
  private readonly choices = new Map<number, ChoiceTiming>();
  private readonly finishReasons = new Set<string>();
  private errorCode: string | null = null;
  /** Choices sent to the engine and not yet finished. */
  private open = 0;
  /** The response's status and duration, once it has gone out. */
  private ended: { status: number; seconds: number } | null = null;
  private recorded = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly log: RequestLog | null,
    private readonly origin: RequestOrigin,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** A prompt of this request goes to the engine with `choices` choices, for the base (null) or an adapter. */
  generating(adapter: string | null, promptTokens: number, choices: number) {
    this.adapter = adapter;
    this.prompts++;
    this.open += choices;
    this.promptTokens += promptTokens;
    this.metrics.prompt(promptTokens);
  }

  /** A token of choice `index` came back from the engine. */
  token(index: number) {
    const t = this.now();
    if (this.firstToken === null) {
      this.firstToken = t;
      this.metrics.timeToFirstToken.observe((t - this.started) / 1000);
    }
    const choice = this.choices.get(index);
    if (choice) {
      this.metrics.tokenGap((t - choice.last) / 1000);
      choice.last = t;
    } else {
      this.choices.set(index, { first: t, last: t });
    }
  }

  /** Choice `index` ended: finished by the engine or a stop string, or aborted. */
  choiceFinished(index: number, adapter: string | null, completionTokens: number, finishReason: string) {
    const timing = this.choices.get(index);
    this.completionTokens += completionTokens;
    this.finishReasons.add(finishReason);
    const decode = timing ? (timing.last - timing.first) / 1000 : null;
    this.metrics.choiceFinished(adapter, completionTokens, finishReason, decode);
    this.open--;
    if (this.open <= 0 && this.ended) this.record();
  }

  /** The error code the response carried (the catalogue's, e.g. ADAPTER_NOT_FOUND). */
  failed(code: string | null) {
    this.errorCode = code;
  }

  /** The response went out with `status` (CLIENT_CLOSED_STATUS: the client left first). Only the first call counts. */
  end(status: number) {
    if (this.ended) return;
    this.ended = { status, seconds: (this.now() - this.started) / 1000 };
    if (this.open <= 0) this.record();
  }

  private record() {
    if (this.recorded) return;
    this.recorded = true;
    const { status, seconds } = this.ended!;
    const { route, method, id } = this.origin;
    this.metrics.responded(route ?? 'unmatched', METHODS.has(method) ? method : 'other', status, this.errorCode);
    const ran = this.prompts > 0;
    if (ran) this.metrics.e2eRequestLatency.observe(seconds);
    if (!ran && status < 400) return;
    this.log?.info('request', {
      reqId: id,
      route: route ?? 'unmatched',
      status,
      ...(this.errorCode ? { code: this.errorCode } : {}),
      ...(ran
        ? {
            adapter: this.adapter,
            promptTokens: this.promptTokens,
            completionTokens: this.completionTokens,
            finishReason: [...this.finishReasons].join(',') || null,
            ttftMs: this.firstToken === null ? null : round(this.firstToken - this.started),
          }
        : {}),
      durationMs: round(seconds * 1000),
    });
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/** The `error.code` of an OpenAI-shaped error body (a JSON string), or null. */
export function errorCodeOf(body: unknown): string | null {
  if (typeof body !== 'string' || body.length > 65_536) return null;
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } })?.error?.code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}
