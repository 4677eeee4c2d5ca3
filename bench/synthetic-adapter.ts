/** Random LoRA adapters (seeded, non-zero A and B) on all seven projections, made in memory for benchmarks. */
import type { LoraAdapter, LoraModuleWeights } from '../src/adapters/types.ts';
import { SeededRandom } from '../src/engine/rng.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { MODULE_KINDS, moduleIndex, moduleShape } from '../src/model/modules.ts';

export function syntheticAdapter(config: ModelConfig, rank: number, seed: number, name: string): LoraAdapter {
  const rng = new SeededRandom(seed);
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * scale);
  const modules = new Map<number, LoraModuleWeights>();
  let sizeBytes = 0;
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const kind of MODULE_KINDS) {
      const { inFeatures, outFeatures } = moduleShape(config, kind);
      const a = fill(rank * inFeatures, 1 / Math.sqrt(inFeatures));
      const b = fill(outFeatures * rank, 0.05);
      sizeBytes += (a.length + b.length) * 4;
      modules.set(moduleIndex(layer, kind), { kind, layer, rank, scale: 2, a, b });
    }
  }
  return {
    name,
    rankMax: rank,
    targets: [...MODULE_KINDS],
    modules,
    config: { r: rank, lora_alpha: 2 * rank } as unknown as LoraAdapter['config'],
    sizeBytes,
  };
}
