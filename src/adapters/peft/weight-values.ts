/**
 * Values, not only shapes: a LoRA factor holding NaN, ±Inf or a huge number loads fine and then serves
 * garbage (or kills a forward pass), so it is refused at load, naming the tensor.
 *
 * The bound is 65504, the largest finite float16: adapters are trained and saved in f16/bf16 with values
 * far below 1, slots may hold them as f16 (--lora-dtype), and anything larger becomes Inf there.
 */
import { createError } from '../../observability/errors.ts';

export const MAX_FACTOR_MAGNITUDE = 65504;
/** |alpha / r| (or alpha / √r): PEFT adapters use scales around 0.5–4; 1024 leaves room without overflow. */
export const MAX_LORA_SCALE = 1024;

export function checkFactorValues(data: Float32Array, file: string, tensor: string) {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (Number.isFinite(v) && Math.abs(v) <= MAX_FACTOR_MAGNITUDE) continue;
    throw createError('ADAPTER_WEIGHTS_INVALID', {
      file,
      field: `tensor '${tensor}'`,
      problem: `holds ${v} at index ${i}; LoRA factors must be finite and at most ${MAX_FACTOR_MAGNITUDE} in magnitude`,
      hint: 'training diverged or the file is damaged; re-train or re-save the adapter',
    });
  }
}
