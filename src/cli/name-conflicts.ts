/**
 * Names that would mean two things, checked when `serve` starts. The base's name always means the base: an
 * --adapter with that name is refused, and a --lora-dir folder with it is not served (warned). An --adapter
 * wins over a --lora-dir folder of the same name (warned). Runtime loads are checked by the admin route.
 */
import { LocalDirStore } from '../adapters/store/local-dir-store.ts';

export interface NameConflicts {
  /** Refuses to start. */
  error: string | null;
  warnings: string[];
}

export function nameConflicts(
  base: string,
  staticNames: readonly string[],
  storeNames: readonly string[],
): NameConflicts {
  const error = staticNames.includes(base)
    ? `--adapter '${base}' has the base model's name: requests for '${base}' would get the base. ` +
      'Rename the adapter, or name the base with --served-model-name'
    : null;
  const warnings: string[] = [];
  if (storeNames.includes(base)) {
    warnings.push(
      `the --lora-dir folder '${base}' has the base model's name and is not served: ` +
        'rename the folder, or name the base with --served-model-name',
    );
  }
  for (const name of storeNames.filter((n) => n !== base && staticNames.includes(n))) {
    warnings.push(`--adapter '${name}' hides the --lora-dir folder of the same name (the --adapter is served)`);
  }
  return { error, warnings };
}

/** The adapter names a store lists now (empty without a store, or when it cannot be read: the engine says why). */
export async function storeNames(loraDir: string | null): Promise<string[]> {
  if (!loraDir) return [];
  try {
    return (await (await LocalDirStore.open(loraDir)).list()).map((a) => a.name);
  } catch {
    return [];
  }
}
