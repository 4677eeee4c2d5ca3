/**
 * NeMo 1.x (megatron-core) LoRA tensor names, as NLPAdapterModelMixin saves them in model_weights.ckpt:
 *
 *   model.decoder.layers.{i}.self_attention.adapter_layer.lora_kqv_adapter.linear_{in,out}.weight   fused q|k|v
 *   model.decoder.layers.{i}.self_attention.adapter_layer.lora_dense_attention_adapter.…            linear_proj (o)
 *   model.decoder.layers.{i}.mlp.adapter_layer.lora_hto4h_adapter.…                                 linear_fc1 (gate|up)
 *   model.decoder.layers.{i}.mlp.adapter_layer.lora_4htoh_adapter.…                                 linear_fc2 (down)
 *   …lora_unfused_kqv_adapter.{q,k,v}_adapter.… / …lora_unfused_hto4h_adapter.{gate,up}_adapter.…   variant canonical
 *
 * (AdapterName in nemo/collections/nlp/modules/common/megatron/adapters/parallel_adapters.py; the layer prefix
 * as scripts/nlp_language_modeling/merge_lora_weights/merge.py reads it; `model.module.` under megatron_amp_O2.)
 * linear_in is LoRA's A [dim, in], linear_out its B [out, dim]; layer numbers in names are 0-based.
 */
import { createError } from '../../../observability/errors.ts';
import type { NemoTarget } from './model-config.ts';

/** Which output rows of the NeMo module a tensor covers: all of them (fused) or one part (canonical). */
export type NemoPart = 'all' | 'q' | 'k' | 'v' | 'gate' | 'up';

export interface NemoTensorName {
  layer: number;
  target: NemoTarget;
  part: NemoPart;
  factor: 'linear_in' | 'linear_out';
  /** The LoRA variant whose name this is; linear_proj and linear_fc2 adapters are named alike in both. */
  variant: 'nemo' | 'canonical' | 'either';
}

const NAME =
  /^(?:model\.)?(?:module\.)?decoder\.layers\.(\d{1,6})\.(?:self_attention|mlp)\.adapter_layer\.([a-z0-9_]+)(?:\.(q|k|v|gate|up)_adapter)?\.(linear_in|linear_out)\.weight$/;

const ADAPTERS: Record<
  string,
  { target: NemoTarget; parent: string; parts: NemoPart[]; variant: NemoTensorName['variant'] }
> = {
  lora_kqv_adapter: { target: 'attention_qkv', parent: 'self_attention', parts: ['all'], variant: 'nemo' },
  lora_dense_attention_adapter: {
    target: 'attention_dense',
    parent: 'self_attention',
    parts: ['all'],
    variant: 'either',
  },
  lora_hto4h_adapter: { target: 'mlp_fc1', parent: 'mlp', parts: ['all'], variant: 'nemo' },
  lora_4htoh_adapter: { target: 'mlp_fc2', parent: 'mlp', parts: ['all'], variant: 'either' },
  lora_unfused_kqv_adapter: {
    target: 'attention_qkv',
    parent: 'self_attention',
    parts: ['q', 'k', 'v'],
    variant: 'canonical',
  },
  lora_unfused_hto4h_adapter: { target: 'mlp_fc1', parent: 'mlp', parts: ['gate', 'up'], variant: 'canonical' },
};

export function parseNemoTensorName(tensor: string, file: string): NemoTensorName {
  const m = NAME.exec(tensor);
  const adapter = m ? (Object.hasOwn(ADAPTERS, m[2]) ? ADAPTERS[m[2]] : undefined) : undefined;
  const part = (m?.[3] ?? 'all') as NemoPart;
  if (!m || !adapter?.parts.includes(part) || !tensor.includes(`.${adapter.parent}.adapter_layer.`)) {
    const legacy = tensor.includes('language_model.encoder.layers.');
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file,
      field: `tensor '${tensor.slice(0, 200)}'`,
      problem: legacy
        ? 'is a pre-megatron-core NeMo name (language_model.encoder); only megatron-core (mcore_gpt) adapters are read'
        : 'is not a NeMo LoRA tensor (…decoder.layers.{i}.{self_attention,mlp}.adapter_layer.lora_*_adapter.linear_{in,out}.weight)',
      hint: legacy ? 'retrain or convert the adapter with a megatron-core NeMo model' : undefined,
    });
  }
  return {
    layer: Number(m[1]),
    target: adapter.target,
    part,
    factor: m[4] as 'linear_in' | 'linear_out',
    variant: adapter.variant,
  };
}
