/**
 * The server's life: loading (not ready), serving, draining (after SIGTERM). Readiness and every API route
 * follow it; requests in flight are counted so a drain knows when it is done.
 */
export class Lifecycle {
  draining = false;
  inFlight = 0;
  private idle: (() => void)[] = [];
  private readyCallbacks: (() => void)[] | null;

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

  begin() {
    this.inFlight++;
  }

  end() {
    this.inFlight--;
    if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Stops taking requests; resolves when the running ones are done or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle.push(resolve);
      setTimeout(resolve, timeoutMs).unref();
    });
  }
}
