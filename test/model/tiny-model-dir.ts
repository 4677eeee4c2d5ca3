/** Writes tiny Hugging Face model folders (config.json + safetensors) for the loader tests. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { type TensorToWrite, writeSafetensors } from '../../src/model/safetensors.ts';

export interface TinyModelOptions {
  family?: 'llama' | 'mistral' | 'qwen2';
  dtype?: 'F32' | 'F16' | 'BF16';
  tied?: boolean;
  attentionBias?: boolean; // Llama only; Qwen2 always has q/k/v biases
  shards?: number; // > 1: model-0000i-of-0000n.safetensors + index
  config?: Record<string, unknown>; // overrides
}

export const TINY = { vocab: 32, hidden: 16, intermediate: 24, layers: 2, heads: 4, kvHeads: 2, headDim: 4 };

const ARCH = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' };
const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export function tinyConfig(o: TinyModelOptions = {}): Record<string, unknown> {
  const family = o.family ?? 'llama';
  return {
    architectures: [ARCH[family]],
    model_type: family,
    vocab_size: TINY.vocab,
    hidden_size: TINY.hidden,
    intermediate_size: TINY.intermediate,
    num_hidden_layers: TINY.layers,
    num_attention_heads: TINY.heads,
    num_key_value_heads: TINY.kvHeads,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: o.tied ?? false,
    torch_dtype: TORCH_DTYPE[o.dtype ?? 'F32'],
    bos_token_id: 1,
    eos_token_id: 2,
    ...(family === 'llama' ? { attention_bias: o.attentionBias ?? false } : {}),
    ...(family === 'mistral' ? { sliding_window: 32 } : {}),
    ...(family === 'qwen2' ? { use_sliding_window: false, sliding_window: 64 } : {}),
    ...o.config,
  };
}

/** The tensors a tiny model has, with f32 values (stored rounded to the file's dtype). */
export function tinyTensors(o: TinyModelOptions = {}): { name: string; shape: number[]; values: Float32Array }[] {
  const family = o.family ?? 'llama';
  const { vocab: V, hidden: H, intermediate: I, heads, kvHeads, headDim: D } = TINY;
  const qkvBias = family === 'qwen2' || (family === 'llama' && (o.attentionBias ?? false));
  const oBias = family === 'llama' && (o.attentionBias ?? false);
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < TINY.layers; l++) {
    const p = `model.layers.${l}`;
    shapes.push([`${p}.input_layernorm.weight`, [H]], [`${p}.post_attention_layernorm.weight`, [H]]);
    shapes.push([`${p}.self_attn.q_proj.weight`, [heads * D, H]]);
    shapes.push([`${p}.self_attn.k_proj.weight`, [kvHeads * D, H]], [`${p}.self_attn.v_proj.weight`, [kvHeads * D, H]]);
    shapes.push([`${p}.self_attn.o_proj.weight`, [H, heads * D]]);
    if (qkvBias) {
      shapes.push([`${p}.self_attn.q_proj.bias`, [heads * D]]);
      shapes.push([`${p}.self_attn.k_proj.bias`, [kvHeads * D]], [`${p}.self_attn.v_proj.bias`, [kvHeads * D]]);
    }
    if (oBias) shapes.push([`${p}.self_attn.o_proj.bias`, [H]]);
    shapes.push(
      [`${p}.mlp.gate_proj.weight`, [I, H]],
      [`${p}.mlp.up_proj.weight`, [I, H]],
      [`${p}.mlp.down_proj.weight`, [H, I]],
    );
  }
  shapes.push(['model.norm.weight', [H]]);
  if (!(o.tied ?? false)) shapes.push(['lm_head.weight', [V, H]]);
  let seed = 12345;
  return shapes.map(([name, shape]) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      values[i] = (seed / 2 ** 32 - 0.5) * 0.2;
    }
    return { name, shape, values };
  });
}

export function encodeTensor(
  name: string,
  shape: number[],
  values: Float32Array,
  dtype: 'F32' | 'F16' | 'BF16',
): TensorToWrite {
  if (dtype === 'F32') return { name, dtype, shape, data: values };
  const round = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  return { name, dtype, shape, data: Uint16Array.from(values, round) };
}

/** Writes config.json and the weights; returns what was written, for comparisons. */
export async function writeTinyModel(dir: string, o: TinyModelOptions = {}) {
  const config = tinyConfig(o);
  const tensors = tinyTensors(o);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const encoded = tensors.map((t) => encodeTensor(t.name, t.shape, t.values, o.dtype ?? 'F32'));
  const shards = o.shards ?? 1;
  if (shards === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), encoded);
  } else {
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = encoded.filter((_, i) => i % shards === s);
      for (const t of part) weightMap[t.name] = file;
      await writeSafetensors(join(dir, file), part);
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }
  return { config, tensors, encoded };
}
