/**
 * The inverse of loadWeights: a model's weights as the named tensors of a Hugging Face checkpoint, in the
 * order and under the names expectedTensors lists (the family's spec), every one stored in one dtype. A tied
 * model writes no lm_head.weight, so it stays tied.
 *
 *   await writeModelSafetensors(dir, checkpointTensors(config, weights, 'bf16'));
 */
import type { WeightDType, WeightMatrix } from '../kernels/types.ts';
import { convertWeight, weightFormat } from '../kernels/weight-format.ts';
import type { ModelConfig } from './config.ts';
import type { TensorToWrite } from './safetensors.ts';
import { specOf } from './spec/index.ts';
import { expectedTensors, layerNorms, type ModelWeights } from './weights.ts';

const SAFETENSORS_DTYPE: Record<WeightDType, TensorToWrite['dtype']> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export function checkpointTensors(config: ModelConfig, weights: ModelWeights, dtype: WeightDType): TensorToWrite[] {
  const values = new Map<string, WeightMatrix | Float32Array>();
  values.set('model.embed_tokens.weight', weights.embedding);
  const spec = specOf(config.family);
  for (const [i, layer] of weights.layers.entries()) {
    const p = `model.layers.${i}`;
    for (const norm of layerNorms(config)) values.set(`${p}.${norm.name}.weight`, layer.norms[norm.name]);
    for (const m of spec.modules) {
      const w = layer.linear[m.kind];
      if (w) values.set(`${p}.${m.parent}.${m.kind}.weight`, w);
      const bias = layer.bias[m.kind];
      if (bias) values.set(`${p}.${m.parent}.${m.kind}.bias`, bias);
    }
  }
  values.set('model.norm.weight', weights.finalNorm);
  if (!config.tieWordEmbeddings) values.set('lm_head.weight', weights.lmHead);

  return expectedTensors(config).map(({ name, shape }) => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`checkpoint: the weights have no '${name}' [${shape.join(', ')}]`);
    const numel = shape.reduce((a, b) => a * b, 1);
    const stored =
      value instanceof Float32Array ? weightFormat(dtype).encode(value, 1, value.length) : convertWeight(value, dtype);
    if (stored.rows * stored.cols !== numel) {
      throw new Error(
        `checkpoint: '${name}' holds ${stored.rows * stored.cols} values, expected [${shape.join(', ')}]`,
      );
    }
    return { name, dtype: SAFETENSORS_DTYPE[dtype], shape, data: stored.data.subarray(0, numel) };
  });
}
