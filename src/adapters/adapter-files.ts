/**
 * Every file of an adapter is opened here, contained and bounded:
 *  - its real path (symlinks resolved) must lie inside the adapter's root: the store for store adapters,
 *    the --allowed-lora-root it lies in for admin-API loads, the adapter directory itself for --adapter;
 *    checked before the open and, on Linux, again on the opened fd (a directory swapped for a link between);
 *  - it is opened O_RDONLY | O_NONBLOCK | O_NOFOLLOW and fstat'ed on that same fd: only a regular file is
 *    read (from that fd), so a FIFO, socket or device fails its own load at once instead of blocking.
 * Messages name files relative to the adapter ("adapter 'sql': adapter_config.json"), never server paths.
 *
 *   const dir = await openAdapterDir('sql', '/adapters/sql', '/adapters');
 *   const fh = await openAdapterFile(dir, 'adapter_config.json', 'ADAPTER_INVALID_CONFIG');
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileKind } from '../model/safetensors.ts';
import { createError } from '../observability/errors.ts';

export interface AdapterDir {
  name: string;
  dir: string; // real path
  root: string; // real path; every file opened must lie inside it
  /** What the root is, for messages: "the adapter store" (any given root) or "the adapter directory". */
  rootName: string;
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

/** `adapter 'sql': adapter_config.json`: how a file of an adapter is named in messages. */
export function adapterFileLabel(name: string, file: string): string {
  return `adapter '${name}': ${file}`;
}

/** True when `path` is `root` or lies below it (both real paths). */
export function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
}

/** Resolves an adapter directory; `root` (default: the directory itself) bounds every file opened later. */
export async function openAdapterDir(name: string, dir: string, root?: string): Promise<AdapterDir> {
  const notFound = (what: string) => createError('ADAPTER_NOT_FOUND', { name, where: what });
  const real = await realpath(dir).catch(() => null);
  if (real === null) throw notFound('its directory (no such directory)');
  const realRoot = root === undefined ? real : await realpath(root).catch(() => null);
  if (realRoot === null) throw notFound('its adapter store (the store directory is gone)');
  const rootName = root === undefined ? 'the adapter directory' : 'the adapter store';
  if (!isInside(real, realRoot)) {
    throw createError('ADAPTER_FILE_OUTSIDE', { file: adapterFileLabel(name, '.'), root: rootName });
  }
  if (!(await stat(real)).isDirectory()) throw notFound('its directory (not a directory)');
  return { name, dir: real, root: realRoot, rootName };
}

/**
 * Opens `file` (relative to the adapter directory) as a contained regular file; null when it does not
 * exist. `code` is the error for a file that is not a regular file.
 */
export async function openAdapterFile(
  d: AdapterDir,
  file: string,
  code: 'ADAPTER_INVALID_CONFIG' | 'ADAPTER_WEIGHTS_INVALID',
): Promise<{ fh: FileHandle; stats: Stats } | null> {
  const label = adapterFileLabel(d.name, file);
  const real = await realpath(join(d.dir, file)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
    throw createError(code, { file: label, problem: `cannot be resolved (${e.code ?? 'error'})` });
  });
  if (real === null) return null;
  if (!isInside(real, d.root)) throw createError('ADAPTER_FILE_OUTSIDE', { file: label, root: d.rootName });
  let fh: FileHandle;
  try {
    fh = await open(real, OPEN_FLAGS);
  } catch (e) {
    // ELOOP: the final component became a symlink after realpath (a swap): refused like any link out.
    const errno = (e as NodeJS.ErrnoException).code ?? 'error';
    throw createError(code, { file: label, problem: `cannot be opened (${errno})` });
  }
  // A directory above the file swapped for a link between realpath and open: what was opened is what counts.
  const opened = await realpath(`/proc/self/fd/${fh.fd}`).catch(() => null); // Linux; elsewhere the check above
  if (opened !== null && !isInside(opened, d.root)) {
    await fh.close();
    throw createError('ADAPTER_FILE_OUTSIDE', { file: label, root: d.rootName });
  }
  const stats = await fh.stat();
  if (!stats.isFile()) {
    await fh.close();
    throw createError(code, {
      file: label,
      problem: `is ${fileKind(stats)}, not a regular file; nothing was read from it`,
      hint: 'an adapter holds regular files only; replace it with the file itself',
    });
  }
  return { fh, stats };
}
