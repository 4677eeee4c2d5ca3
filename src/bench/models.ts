/**
 * The served models from GET /v1/models. The base is the entry with a null (or absent) `parent`, or whose
 * `id` equals its `root`; every other entry is an adapter (vLLM and loraplex list LoRA adapters with
 * their base as parent).
 */
import { requestHeaders, serverRoot } from './endpoint.ts';

export interface ModelEntry {
  id: string;
  parent?: string | null;
  root?: string | null;
}

export interface ServedModels {
  base: string | null;
  adapters: string[];
}

export function isBaseModel(entry: ModelEntry): boolean {
  return entry.parent === null || entry.parent === undefined || entry.id === entry.root;
}

export function splitModels(entries: readonly ModelEntry[]): ServedModels {
  const base = entries.find(isBaseModel)?.id ?? null;
  return { base, adapters: entries.filter((e) => !isBaseModel(e)).map((e) => e.id) };
}

export async function fetchServedModels(url: string, apiKey?: string | null): Promise<ServedModels> {
  const target = `${serverRoot(url)}/v1/models`;
  let response: Response;
  try {
    response = await fetch(target, { headers: requestHeaders({ apiKey }) });
  } catch (e) {
    throw new Error(`GET ${target} failed: ${(e as Error).message} (is the server up? check --url)`);
  }
  if (!response.ok) {
    throw new Error(`GET ${target}: HTTP ${response.status} ${(await response.text()).slice(0, 200)}`);
  }
  const body = (await response.json()) as { data?: ModelEntry[] };
  if (!Array.isArray(body.data)) throw new Error(`GET ${target}: no 'data' list in the answer`);
  return splitModels(body.data);
}

/**
 * The models requests name: --model's list as given; else the first `numAdapters` adapters the server
 * lists; else the base.
 */
export async function resolveModels(options: {
  url: string;
  apiKey?: string | null;
  models: string[] | null;
  numAdapters: number | null;
}): Promise<string[]> {
  if (options.models && options.models.length > 0) {
    if (options.numAdapters !== null) throw new Error('give --model or --num-adapters, not both');
    return options.models;
  }
  const served = await fetchServedModels(options.url, options.apiKey);
  if (options.numAdapters !== null && options.numAdapters > 0) {
    if (served.adapters.length < options.numAdapters) {
      throw new Error(
        `--num-adapters ${options.numAdapters}: the server lists ${served.adapters.length} adapter(s)` +
          (served.adapters.length > 0 ? ` (${served.adapters.join(', ')})` : ''),
      );
    }
    return served.adapters.slice(0, options.numAdapters);
  }
  if (!served.base) throw new Error('the server lists no base model; name one with --model');
  return [served.base];
}
