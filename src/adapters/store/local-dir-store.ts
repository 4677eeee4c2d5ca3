/**
 * An adapter store on a local directory, in NIM's layout (NIM_PEFT_SOURCE): one sub-folder per adapter, the
 * folder's name being the adapter's name. A requested name is only ever looked up in the store's listing —
 * never joined into a path — and an entry whose real path leads out of the store (a symlink) is refused.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { createError } from '../../observability/errors.ts';

/** What an adapter name may look like: no separators, no dot-dot, nothing a path could hide in. */
export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface StoredAdapter {
  name: string;
  dir: string; // the real path, inside the store
  root: string; // the store's real path: every file the adapter's load opens must lie inside it
  /** Changes when a file of the adapter is replaced, added or removed (names, sizes, modification times). */
  fingerprint: string;
}

export class LocalDirStore {
  private constructor(readonly root: string) {}

  static async open(root: string): Promise<LocalDirStore> {
    const real = await realpath(root).catch(() => {
      throw createError('ADAPTER_NOT_FOUND', { name: '*', where: root, hint: 'the adapter directory does not exist' });
    });
    if (!(await stat(real)).isDirectory()) {
      throw createError('ADAPTER_NOT_FOUND', { name: '*', where: root, hint: 'the adapter store must be a directory' });
    }
    return new LocalDirStore(real);
  }

  /** The adapters in the store: sub-folders with a valid name, inside the store, holding adapter_config.json. */
  async list(): Promise<StoredAdapter[]> {
    const out: StoredAdapter[] = [];
    for (const entry of (await readdir(this.root, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (!ADAPTER_NAME.test(entry.name) || entry.name.includes('..')) continue;
      const dir = await this.inside(join(this.root, entry.name));
      if (!dir) continue;
      const config = await this.inside(join(dir, 'adapter_config.json'));
      if (!config) continue;
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

  /** The real path if it exists and lies inside the store; null otherwise (symlinks out are refused). */
  private async inside(path: string): Promise<string | null> {
    const real = await realpath(path).catch(() => null);
    if (!real) return null;
    const rel = relative(this.root, real);
    if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || rel.startsWith(sep)) return null;
    return real;
  }
}

async function fingerprintOf(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const s = await stat(join(dir, name)).catch(() => null);
    if (s?.isFile()) parts.push(`${name}:${s.size}:${s.mtimeMs}`);
  }
  return parts.join('|');
}
