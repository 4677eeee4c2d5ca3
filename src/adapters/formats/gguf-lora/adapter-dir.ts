/** Which folders hold a GGUF LoRA adapter, from their file names alone (nothing is opened here). */
import { readdir } from 'node:fs/promises';

export const GGUF_EXTENSION = '.gguf';

/**
 * True when the folder is a GGUF adapter: no adapter_config.json (a PEFT folder wins: llama.cpp's converter
 * writes its .gguf next to the PEFT files by default) and at least one *.gguf file.
 */
export async function isGgufAdapterDir(dir: string): Promise<boolean> {
  const names: string[] = await readdir(dir).catch(() => []);
  return !names.includes('adapter_config.json') && (await ggufFilesIn(dir)).length > 0;
}

/** The *.gguf files directly in a directory (names only; opening them is contained by openAdapterFile). */
export async function ggufFilesIn(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => null);
  if (entries === null) return [];
  return entries
    .filter((e) => e.name.endsWith(GGUF_EXTENSION) && !e.isDirectory())
    .map((e) => e.name)
    .sort();
}
