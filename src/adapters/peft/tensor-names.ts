/**
 * Names of the tensors in a PEFT adapter_model.safetensors:
 *
 *   base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight           [r, in]
 *   base_model.model.model.layers.3.self_attn.q_proj.lora_B.default.weight   [out, r]  (adapter-name infix)
 *   base_model.model.model.layers.3.self_attn.q_proj.lora_magnitude_vector   [out]     (DoRA's magnitude m)
 *
 * The module key ("model.layers.3.self_attn.q_proj") is the name PEFT matched its config against.
 * Tensors of LoRA features loraplex does not serve are refused here, by name.
 */
import { createError } from '../../observability/errors.ts';

export type LoraFactor = 'lora_A' | 'lora_B' | 'lora_magnitude_vector';

export interface PeftTensorName {
  tensor: string; // the full name, for messages
  moduleKey: string; // e.g. model.layers.3.self_attn.q_proj
  factor: LoraFactor;
}

const PEFT_PREFIX = 'base_model.model.';
const COMPILED_PREFIX = '_orig_mod.'; // torch.compile's wrapper, which PEFT also strips
const FACTOR = /^(.+)\.(lora_A|lora_B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;
// PEFT saves DoRA's magnitude without `.weight` (and without the adapter name); the in-memory spelling is accepted too.
const MAGNITUDE = /^(.+)\.lora_magnitude_vector(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$/;

/** LoRA-feature tensors that are recognised, and refused with the feature's name. */
const UNSUPPORTED_TENSORS: [RegExp, string, string][] = [
  [/\.lora_B(?:\.[A-Za-z0-9_-]+)?\.bias$/, 'a bias on lora_B (lora_bias)', 'retrain with lora_bias=False'],
  [
    /\.lora_embedding_[AB](?:\.|$)/,
    'LoRA on embeddings (lora_embedding_A/B)',
    'retrain without embed_tokens in target_modules',
  ],
];

export function parsePeftTensorName(tensor: string, file: string): PeftTensorName {
  let key = tensor.startsWith(PEFT_PREFIX) ? tensor.slice(PEFT_PREFIX.length) : tensor;
  if (key.startsWith(COMPILED_PREFIX)) key = key.slice(COMPILED_PREFIX.length);
  const m = FACTOR.exec(key);
  if (m) return { tensor, moduleKey: m[1], factor: m[2] as LoraFactor };
  const magnitude = MAGNITUDE.exec(key);
  if (magnitude) return { tensor, moduleKey: magnitude[1], factor: 'lora_magnitude_vector' };
  for (const [pattern, feature, hint] of UNSUPPORTED_TENSORS) {
    if (pattern.test(key)) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file,
        field: `tensor '${tensor}'`,
        problem: `${feature} is not supported`,
        hint,
      });
    }
  }
  if (/(?:^|\.)lora_[A-Za-z0-9_]+(?:\.|$)/.test(key)) {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: `tensor '${tensor}'`,
      problem:
        "belongs to a LoRA variant loraplex does not serve; only lora_A / lora_B factors (and DoRA's lora_magnitude_vector) are supported",
    });
  }
  throw createError('ADAPTER_TENSOR_UNEXPECTED', {
    file,
    field: `tensor '${tensor}'`,
    problem:
      'is not a LoRA factor (lora_A / lora_B) nor a saved embed_tokens, lm_head or norm weight; ' +
      'adapters that carry other full weights (trained biases, other saved modules) are not supported',
    hint: 'save the adapter with only its LoRA weights',
  });
}
