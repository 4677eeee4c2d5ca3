/**
 * Reads, validates and packs one adapter directory: everything a load does before the engine copies the
 * packed weights into a kernel slot. Runs on the loader thread (loader-thread.ts), or inline in tests.
 */
import type { PackedAdapter } from '../../kernels/types.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ModuleKind } from '../../model/modules.ts';
import type { BaseProjections } from '../base-projections.ts';
import { packedBytes } from '../cache/host-cache.ts';
import { isGgufAdapterDir } from '../formats/gguf-lora/adapter-dir.ts';
import { loadGgufAdapter } from '../formats/gguf-lora/load.ts';
import { isNemoAdapterDir } from '../formats/nemo/adapter-dir.ts';
import { loadNemoAdapter } from '../formats/nemo/load.ts';
import { packAdapter } from '../pack.ts';
import { loadPeftAdapter } from '../peft/load.ts';

/** What /v1/models and logs say about a loaded adapter. */
export interface AdapterSummary {
  rank: number; // the largest rank of any module
  targets: ModuleKind[];
  sizeBytes: number; // host bytes of the packed adapter (packedBytes: factors, DoRA scales, edge modules)
  warnings: string[];
}

export interface PackedWithSummary {
  packed: PackedAdapter;
  summary: AdapterSummary;
}

export async function loadPackedAdapter(
  name: string,
  dir: string,
  base: ModelConfig,
  maxLoraRank: number,
  root?: string,
  baseWeights?: BaseProjections, // DoRA adapters need them
): Promise<PackedWithSummary> {
  const adapter = (await isGgufAdapterDir(dir))
    ? await loadGgufAdapter(dir, base, { maxLoraRank, name, root })
    : (await isNemoAdapterDir(dir))
      ? await loadNemoAdapter(dir, base, { maxLoraRank, name, root })
      : await loadPeftAdapter(dir, base, { maxLoraRank, name, root, baseWeights });
  const packed = packAdapter(adapter, base);
  return {
    packed,
    summary: {
      rank: adapter.rankMax,
      targets: adapter.targets,
      sizeBytes: packedBytes(packed),
      warnings: adapter.warnings ?? [],
    },
  };
}
