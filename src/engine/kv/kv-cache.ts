/** The KV cache storage: per layer, K and V as [numBlocks·blockSize, Hkv·D] f32 rows. */
import type { ModelConfig } from '../../model/config.ts';
import type { KvCacheLayers } from '../../model/forward.ts';

export function allocateKvCache(config: ModelConfig, numBlocks: number, blockSize: number): KvCacheLayers {
  const rowFloats = config.numKvHeads * config.headDim;
  const layerFloats = numBlocks * blockSize * rowFloats;
  const k: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    k.push(new Float32Array(layerFloats));
    v.push(new Float32Array(layerFloats));
  }
  return { blockSize, k, v };
}
