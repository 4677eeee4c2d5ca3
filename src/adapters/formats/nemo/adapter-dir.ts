/** Which folders hold a NeMo LoRA adapter, from their file names alone (nothing is opened here). */
import { readdir } from 'node:fs/promises';

export const NEMO_EXTENSION = '.nemo';

/** True when the folder is a NeMo adapter: no adapter_config.json (a PEFT folder wins) and a *.nemo file. */
export async function isNemoAdapterDir(dir: string): Promise<boolean> {
  const names: string[] = await readdir(dir).catch(() => []);
  return !names.includes('adapter_config.json') && (await nemoFilesIn(dir)).length > 0;
}

/** The *.nemo files directly in a directory (names only; opening them is contained by openAdapterFile). */
export async function nemoFilesIn(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => null);
  if (entries === null) return [];
  return entries
    .filter((e) => e.name.endsWith(NEMO_EXTENSION) && !e.isDirectory())
    .map((e) => e.name)
    .sort();
}
