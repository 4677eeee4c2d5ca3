/**
 * An adapter store on a local directory, in NIM's layout (NIM_PEFT_SOURCE): one sub-folder per adapter, the
 * folder's name being the adapter's name. A requested name is only ever looked up in the store's listing —
 * never joined into a path — and an entry whose real path leads out of the store (a symlink) is refused.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createError } from '../../observability/errors.ts';
import { isInside } from '../adapter-files.ts';
import { ggufFilesIn } from '../formats/gguf-lora/adapter-dir.ts';
import { nemoFilesIn } from '../formats/nemo/adapter-dir.ts';

/** What an adapter name may look like: no separators, no dot-dot, nothing a path could hide in. */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface StoredAdapter {
  name: string;
  dir: string; // the real path, inside the store
  root: string; // the store's real path: every file the adapter's load opens must lie inside it
  /** Changes when a file of the adapter is replaced, added or removed (names, sizes, modification times). */
  fingerprint: string;
}

const OUTSIDE = Symbol('outside the store');

export interface StoreOptions {
  /** Told once per folder and reason when a folder of the store is not served (the operator sees it). */
  onSkip?: (name: string, reason: string) => void;
}

export class LocalDirStore {
  private readonly reported = new Set<string>();

  private constructor(
    readonly root: string,
    private readonly opts: StoreOptions,
  ) {}

  static async open(root: string, opts: StoreOptions = {}): Promise<LocalDirStore> {
    const real = await realpath(root).catch(() => {
      throw createError('ADAPTER_NOT_FOUND', { name: '*', where: root, hint: 'the adapter directory does not exist' });
    });
    if (!(await stat(real)).isDirectory()) {
      throw createError('ADAPTER_NOT_FOUND', { name: '*', where: root, hint: 'the adapter store must be a directory' });
    }
    return new LocalDirStore(real, opts);
  }

  /**
   * The adapters in the store: sub-folders with a valid name, inside the store, holding adapter_config.json
   * (PEFT), a *.gguf file (llama.cpp GGUF LoRA) or a *.nemo file (NeMo LoRA).
   */
  async list(): Promise<StoredAdapter[]> {
    const out: StoredAdapter[] = [];
    for (const entry of (await readdir(this.root, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (!ADAPTER_NAME.test(entry.name) || entry.name.includes('..')) {
        if (entry.isDirectory()) this.skip(entry.name, 'its name is not a valid adapter name (letters, digits, . _ -)');
        continue;
      }
      const dir = await this.inside(join(this.root, entry.name));
      if (dir === OUTSIDE) this.skip(entry.name, 'it resolves outside the store (a symlink out)');
      if (dir === null || dir === OUTSIDE) continue;
      const file = await adapterFileOf(dir);
      if (file === null) continue;
      const config = await this.inside(join(dir, file));
      if (config === OUTSIDE) this.skip(entry.name, `its ${file} resolves outside the store`);
      if (config === null || config === OUTSIDE) continue;
      out.push({ name: entry.name, dir, root: this.root, fingerprint: await fingerprintOf(dir) });
    }
    return out;
  }

  /** Finds a name in the listing; a name that is not there (whatever it contains) is simply not found. */
  async find(name: string): Promise<StoredAdapter> {
    const hit = (await this.list()).find((a) => a.name === name);
    // The store's path is the server's business: the message names the flag that sets it.
    if (!hit)
      throw createError('ADAPTER_NOT_FOUND', { name, where: 'the adapter store (--lora-dir)' }, { param: 'model' });
    return hit;
  }

  /** The real path if it exists and lies inside the store; null if it does not exist; OUTSIDE for a link out. */
  private async inside(path: string): Promise<string | typeof OUTSIDE | null> {
    const real = await realpath(path).catch(() => null);
    if (!real) return null;
    return real !== this.root && isInside(real, this.root) ? real : OUTSIDE;
  }

  private skip(name: string, reason: string) {
    const key = `${name}\0${reason}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.opts.onSkip?.(name.length > 128 ? `${name.slice(0, 128)}…` : name, reason);
  }
}

/** The file that makes a folder an adapter: adapter_config.json, else its first *.gguf, else *.nemo file; or null. */
async function adapterFileOf(dir: string): Promise<string | null> {
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.includes('adapter_config.json')) return 'adapter_config.json';
  return (await ggufFilesIn(dir))[0] ?? (await nemoFilesIn(dir))[0] ?? null;
}

async function fingerprintOf(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const s = await stat(join(dir, name)).catch(() => null);
    if (s?.isFile()) parts.push(`${name}:${s.size}:${s.mtimeMs}`);
  }
  return parts.join('|');
}
