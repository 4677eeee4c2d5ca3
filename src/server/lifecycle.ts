/**
 * The server's life: loading (not ready), serving, draining (after SIGTERM), faulted (the engine died). New
 * requests ask refusal() whether they may start; running ones end early when `cancelled` aborts (the drain's
 * deadline, an engine fault), with the signal's reason as their error. Requests in flight are counted so a
 * drain knows when it is done.
 */
import { createError, type LoraplexError } from '../observability/errors.ts';

export class Lifecycle {
  draining = false;
  inFlight = 0;
  /** Set once the engine has failed: readiness and liveness answer 503 and every request gets this error. */
  fault: LoraplexError | null = null;
  private idle: (() => void)[] = [];
  private readyCallbacks: (() => void)[] | null;
  private readonly cancelAll = new AbortController();

  /** `ready` false: the model is still loading (the server already answers, with 503) until markReady(). */
  constructor(ready = true) {
    this.readyCallbacks = ready ? null : [];
  }

  get ready(): boolean {
    return this.readyCallbacks === null;
  }

  markReady() {
    const callbacks = this.readyCallbacks ?? [];
    this.readyCallbacks = null;
    for (const f of callbacks) f();
  }

  /** Runs `f` once the engine is up (now, if it is). */
  whenReady(f: () => void) {
    if (this.readyCallbacks) this.readyCallbacks.push(f);
    else f();
  }

  /** Aborts when every running request must end now; `reason` is the LoraplexError to report to its client. */
  get cancelled(): AbortSignal {
    return this.cancelAll.signal;
  }

  /** Ends every running request with `error` (their streams get it as a final error event). */
  cancelRunning(error: LoraplexError) {
    if (!this.cancelAll.signal.aborted) this.cancelAll.abort(error);
  }

  /** The engine failed: new requests get `error`, running ones end with it, probes answer 503. */
  markFaulted(error: LoraplexError) {
    this.fault ??= error;
    this.cancelRunning(this.fault);
  }

  /** Why a new request cannot be served now (null: it can). */
  refusal(): LoraplexError | null {
    if (this.fault) return this.fault;
    if (!this.ready) return createError('SERVER_NOT_READY', { what: 'the model is loading' });
    if (this.draining) return createError('SERVER_DRAINING', {});
    return null;
  }

  begin() {
    this.inFlight++;
  }

  end() {
    this.inFlight--;
    if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /**
   * Stops taking requests; resolves when the running ones are done, or at `timeoutMs`, when those still
   * running are cancelled (they end with a SERVER_DRAINING error) and have had their final events sent.
   */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle.push(resolve);
      setTimeout(() => {
        this.cancelRunning(createError('SERVER_DRAINING', {}));
        // Cancelled requests end within a tick or two; do not wait on a client that stopped reading.
        setTimeout(resolve, 500).unref();
      }, timeoutMs).unref();
    });
  }
}
