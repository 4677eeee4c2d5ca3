/**
 * Test plumbing: faults injected on purpose, so tests can pin how the engine and the server contain them.
 * Only tests (and `serve`'s hidden --inject-fault, for tests of the real CLI) set these; nothing reads them
 * from the environment.
 */
export interface EngineFaults {
  /** Forward passes with rows of this adapter throw, as a kernel's argument check would. */
  throwForAdapter?: string;
  /** Forward passes with base (no adapter) rows throw: a fault no adapter can be blamed for. */
  throwForBase?: boolean;
  /** The engine thread exits (code 3) when it first steps. */
  exitOnStep?: boolean;
  /** The engine thread's first step never returns. */
  hangOnStep?: boolean;
  /** The engine thread never finishes loading (the model stays "loading"). */
  hangOnLoad?: boolean;
}

/** `adapter:NAME`, `base`, `exit`, `hang` or `hang-load` (serve's --inject-fault). */
export function parseFault(spec: string): EngineFaults {
  if (spec.startsWith('adapter:') && spec.length > 8) return { throwForAdapter: spec.slice(8) };
  if (spec === 'base') return { throwForBase: true };
  if (spec === 'exit') return { exitOnStep: true };
  if (spec === 'hang') return { hangOnStep: true };
  if (spec === 'hang-load') return { hangOnLoad: true };
  throw new RangeError(`unknown fault '${spec}' (adapter:NAME, base, exit, hang or hang-load)`);
}

/** Blocks the calling thread for good (a hung mount, a kernel that never returns); terminate() still ends it. */
export function hangForever(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

/** Throws the injected kernel fault when the batch holds the rows it targets. */
export function checkInjectedFault(faults: EngineFaults | undefined, adapters: readonly (string | null)[]) {
  if (!faults) return;
  for (const a of adapters) {
    if (a === null && faults.throwForBase) throw new Error('injected fault: a kernel rejected the base rows');
    if (a !== null && a === faults.throwForAdapter) {
      throw new Error(`injected fault: a kernel rejected adapter '${a}'s rows`);
    }
  }
}
