/**
 * Where adapter loads run. The server uses ThreadAdapterLoader (loader-thread.ts) so that reading,
 * converting and packing never delay a forward pass; InlineAdapterLoader does the same work on the caller's
 * thread (offline use and tests).
 */
import type { ModelConfig } from '../../model/config.ts';
import type { BaseProjections } from '../base-projections.ts';
import { loadPackedAdapter, type PackedWithSummary } from './load-packed.ts';

export interface AdapterLoader {
  /** `root` bounds every file read (symlinks resolved): the store's root; default: `dir` itself. */
  load(name: string, dir: string, root?: string): Promise<PackedWithSummary>;
  close(): Promise<void>;
}

export class InlineAdapterLoader implements AdapterLoader {
  constructor(
    private readonly base: ModelConfig,
    private readonly maxLoraRank: number,
    private readonly baseWeights?: BaseProjections,
  ) {}

  load(name: string, dir: string, root?: string): Promise<PackedWithSummary> {
    return loadPackedAdapter(name, dir, this.base, this.maxLoraRank, root, this.baseWeights);
  }

  async close() {}
}
