/**
 * Judging one response against what the request expected — pure, so the rules are unit-tested:
 *
 *   hang            no complete answer within the client timeout (never waited on forever)
 *   disconnect      the soak hung up on purpose (unless a 5xx came first)
 *   5xx             any server error status; `injected` when the request expected it or names the adapter
 *                   the server was told to fail (--inject-fault adapter:NAME; then also an error event)
 *   expected_4xx    a 4xx the request expected (by status)
 *   unexpected_4xx  a 4xx it did not expect (a good request refused, or the wrong 4xx)
 *   unexpected_2xx  a success for a request that should have been refused (a bad adapter served)
 *   stream_error    an error event inside a 2xx stream
 *   truncated       a 2xx that ended without its final [DONE] / body
 *   network         the connection failed or was reset by the server
 *   leak            an error message that shows a server path or a file's contents
 *   ok              a complete 2xx that was expected
 */
import type { RawResponse, SoakRequest } from './http.ts';

export const OUTCOMES = [
  'ok',
  'expected_4xx',
  'disconnect',
  'unexpected_4xx',
  'unexpected_2xx',
  '5xx',
  'stream_error',
  'truncated',
  'network',
  'leak',
  'hang',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Outcomes that fail the soak: all but the first three (a 5xx fails unless injected: see classify). */
export const FAILING: ReadonlySet<Outcome> = new Set(
  OUTCOMES.filter((o) => !['ok', 'expected_4xx', 'disconnect'].includes(o)),
);

export interface Classified {
  outcome: Outcome;
  /** The status (or error code, or network error) that explains it: '400', '503', 'ECONNRESET', … */
  detail: string;
  /** A 5xx the request expected (an injected fault). */
  injected: boolean;
}

/**
 * `alsoExpect`: statuses that became acceptable while the request ran (its adapter was unloaded);
 * `secrets`: strings no answer may contain (the server's temp paths, a secret file's contents).
 */
export function classify(
  req: Pick<SoakRequest, 'expect' | 'injected'> & { body?: string },
  raw: RawResponse,
  alsoExpect: number[] = [],
  secrets: string[] = [],
): Classified {
  const expect = [...req.expect, ...alsoExpect];
  const status = raw.status;
  const code = status === null ? '' : String(status);
  // The client's own strings echoed back (a lora_path it sent) are not a leak.
  const leaked = secrets.find((s) => raw.errorMessage?.includes(s) && !req.body?.includes(s));
  if (leaked !== undefined) return { outcome: 'leak', detail: `${code} shows '${leaked}'`, injected: false };
  if (raw.timedOut)
    return { outcome: 'hang', detail: status === null ? 'no status' : `${code} (body never ended)`, injected: false };
  const injected = req.injected === true;
  if (status !== null && status >= 500) {
    return { outcome: '5xx', detail: code, injected: injected || expect.includes(status) };
  }
  if (raw.abortedByClient)
    return { outcome: 'disconnect', detail: status === null ? 'before status' : 'after first tokens', injected: false };
  if (raw.networkError !== null || status === null)
    return { outcome: 'network', detail: raw.networkError ?? 'no status', injected: false };
  if (status >= 400) {
    if (!expect.includes(status)) return { outcome: 'unexpected_4xx', detail: code, injected: false };
    // A refusal must say why.
    if (!raw.errorMessage) return { outcome: 'unexpected_4xx', detail: `${code} without a reason`, injected: false };
    return { outcome: 'expected_4xx', detail: code, injected: false };
  }
  if (!expect.some((s) => s >= 200 && s < 300)) return { outcome: 'unexpected_2xx', detail: code, injected: false };
  if (raw.streamError) return { outcome: 'stream_error', detail: raw.errorCode ?? 'error event', injected };
  if (!raw.complete) return { outcome: 'truncated', detail: code, injected: false };
  return { outcome: 'ok', detail: code, injected: false };
}

/** Whether this classified response fails the soak: not when it answers an injected fault. */
export function fails(c: Classified): boolean {
  return FAILING.has(c.outcome) && !(c.injected && (c.outcome === '5xx' || c.outcome === 'stream_error'));
}
