/**
 * The metadata of a llama.cpp GGUF LoRA adapter, read as llama.cpp's llama_adapter_lora_init checks it:
 * general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32; absent or 0 means scale 1),
 * general.architecture = the base model's llama.cpp arch.
 */
import type { ModelConfig, ModelFamily } from '../../../model/config.ts';
import { type GgufMetadata, GgufValueType } from '../../../model/gguf/gguf-file.ts';
import { createError } from '../../../observability/errors.ts';

export interface GgufLoraConfig {
  format: 'gguf';
  file: string; // the .gguf file, for messages
  architecture: string; // general.architecture (llama.cpp's arch name)
  /** adapter.lora.alpha; llama.cpp scales each pair by alpha / rank, or by 1 when alpha is 0. */
  loraAlpha: number;
  /** The repository the converter recorded (general.base_model.0.repo_url or .name), informational. */
  baseModelNameOrPath: string | null;
  warnings: string[];
}

/**
 * llama.cpp's arch for each family, and whether its converter permuted q/k rows (LlamaModel.undo_permute,
 * for llama.cpp's interleaved RoPE): convert_hf_to_gguf.py registers LlamaForCausalLM and MistralForCausalLM
 * as LlamaModel; the other families keep Hugging Face's row order.
 */
export const LLAMA_CPP_ARCH: Record<ModelFamily, { arch: string; permutedQk: boolean }> = {
  llama: { arch: 'llama', permutedQk: true },
  mistral: { arch: 'llama', permutedQk: true },
  qwen2: { arch: 'qwen2', permutedQk: false },
  qwen3: { arch: 'qwen3', permutedQk: false },
  gemma2: { arch: 'gemma2', permutedQk: false },
  gemma3: { arch: 'gemma3', permutedQk: false },
  phi3: { arch: 'phi3', permutedQk: false },
};

const CONVERT_HINT = "convert the PEFT adapter with llama.cpp's convert_lora_to_gguf.py";

function text(value: unknown): string {
  const s = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function stringField(meta: GgufMetadata, key: string): string | undefined {
  const entry = meta.get(key);
  return entry?.type === GgufValueType.STRING && typeof entry.value === 'string' ? entry.value : undefined;
}

export function parseGgufLoraConfig(meta: GgufMetadata, base: ModelConfig, file: string): GgufLoraConfig {
  const invalid = (field: string, problem: string, hint = CONVERT_HINT) =>
    createError('ADAPTER_INVALID_CONFIG', { file, field, problem, hint });

  const generalType = meta.get('general.type');
  if (generalType === undefined) {
    throw invalid(
      'general.type',
      'is missing; this GGUF file is a model, not an adapter',
      `${CONVERT_HINT}, or serve it as a base model elsewhere`,
    );
  }
  if (stringField(meta, 'general.type') !== 'adapter') {
    throw invalid('general.type', `is ${text(generalType.value)}; a LoRA adapter file says "adapter"`);
  }
  const adapterType = stringField(meta, 'adapter.type');
  if (adapterType !== 'lora') {
    const problem =
      adapterType === undefined
        ? 'is missing or not a string; a LoRA adapter file says "lora"'
        : `is ${text(adapterType)}; only "lora" adapters are served (control vectors and other adapters are not)`;
    throw createError(adapterType === undefined ? 'ADAPTER_INVALID_CONFIG' : 'ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'adapter.type',
      problem,
    });
  }
  if (meta.has('adapter.alora.invocation_tokens')) {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'adapter.alora.invocation_tokens',
      problem: 'Activated LoRA (aLoRA) is not supported',
    });
  }

  const alphaEntry = meta.get('adapter.lora.alpha');
  let loraAlpha = 0;
  if (alphaEntry !== undefined) {
    // llama.cpp reads it with gguf_get_val_f32, which asserts the stored type.
    if (alphaEntry.type !== GgufValueType.FLOAT32 || typeof alphaEntry.value !== 'number') {
      throw invalid('adapter.lora.alpha', 'must be a float32');
    }
    loraAlpha = alphaEntry.value;
    if (!Number.isFinite(loraAlpha)) throw invalid('adapter.lora.alpha', `is ${loraAlpha}; it must be finite`);
  }

  const architecture = stringField(meta, 'general.architecture');
  const expected = LLAMA_CPP_ARCH[base.family];
  if (architecture === undefined) throw invalid('general.architecture', 'is missing or not a string');
  if (architecture !== expected.arch) {
    throw createError('ADAPTER_BASE_MISMATCH', {
      file,
      problem:
        `general.architecture is ${text(architecture)}, but the base model is ${base.architecture} ` +
        `(llama.cpp arch "${expected.arch}"); llama.cpp refuses this pair too ("model arch and LoRA arch mismatch")`,
    });
  }

  const warnings: string[] = [];
  if (alphaEntry === undefined)
    warnings.push(`${file}: no adapter.lora.alpha; every module is scaled by 1, as llama.cpp does`);
  const baseModel =
    stringField(meta, 'general.base_model.0.repo_url') ?? stringField(meta, 'general.base_model.0.name');
  return {
    format: 'gguf',
    file,
    architecture,
    loraAlpha,
    baseModelNameOrPath: baseModel === undefined ? null : baseModel.slice(0, 200),
    warnings,
  };
}
