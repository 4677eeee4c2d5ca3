/**
 * adapter_config.json of a PEFT VeRA adapter ("peft_type": "VERA"), read with PEFT 0.21's VeraConfig semantics,
 * and the dispatch between the PEFT types loraplex serves (LoRA and VeRA). modules_to_save is read as LoRA's
 * (edge-config.ts: saved embed_tokens / lm_head / norms). Fields that change what the adapter
 * computes are honoured or refused by name; training-only ones (vera_dropout, d_initial, init_weights) are not.
 */
import { createError } from '../../observability/errors.ts';
import {
  CAUSAL_TASK_TYPES,
  type PeftLoraConfig,
  parseConfigJson,
  parsePeftAdapterConfig,
  present,
} from './adapter-config.ts';
import { FieldReader, type Json, shown } from './config-fields.ts';
import { readModulesToSave } from './edge-config.ts';

export interface PeftVeraConfig {
  format: 'peft';
  peftType: 'VERA';
  file: string; // path of adapter_config.json, for messages
  r: number; // rows of vera_A (and columns of vera_B); the length of every lambda_d
  targetModules: string[] | string | null;
  excludeModules: null; // VeraConfig has none
  layersToTransform: number[] | number | null;
  layersPattern: string[] | string | null;
  /** Seeds torch's CPU generator when vera_A / vera_B are not in the weights file (save_projection: false). */
  projectionPrngKey: number;
  saveProjection: boolean;
  /** Whole per-adapter copies of embed_tokens / lm_head / norms, served as LoRA's are (peft/edge-load.ts). */
  modulesToSave: string[];
  baseModelNameOrPath: string | null;
  taskType: string | null;
  peftVersion: string | null;
  warnings: string[];
}

export type PeftAdapterConfig = PeftLoraConfig | PeftVeraConfig;

export function isVeraConfig(config: PeftAdapterConfig): config is PeftVeraConfig {
  return (config as PeftVeraConfig).peftType === 'VERA';
}

/** A PEFT adapter_config.json of a type loraplex serves: LoRA (with DoRA, rsLoRA) or VeRA. */
export function parsePeftConfig(text: string, file: string): PeftAdapterConfig {
  const json = parseConfigJson(text, file);
  if (json.peft_type === 'VERA') return parseVeraConfig(json, file);
  if (json.peft_type !== undefined && json.peft_type !== 'LORA') {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'peft_type',
      problem: `${shown(json.peft_type)} is not supported; loraplex serves LoRA ("peft_type": "LORA") and VeRA ("VERA") adapters`,
    });
  }
  return parsePeftAdapterConfig(text, file);
}

/** PRNG keys beyond this lose integer precision in JSON numbers here; PEFT's are small ints in practice. */
const MAX_PRNG_KEY = Number.MAX_SAFE_INTEGER;

export function parseVeraConfig(json: Json, file: string): PeftVeraConfig {
  const read = new FieldReader(json, file);
  const r = read.positiveInt('r') ?? 256; // VeraConfig's default
  const taskType = read.stringOrNull('task_type');
  if (taskType !== null && !CAUSAL_TASK_TYPES.has(taskType)) {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'task_type',
      problem: `${shown(taskType)} is not supported; loraplex serves causal language models (CAUSAL_LM)`,
    });
  }
  const bias = read.stringOrNull('bias') ?? 'none';
  if (bias !== 'none') {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'bias',
      problem: `${shown(bias)} is not supported: only VeRA adapters with bias "none" are served`,
      hint: 'retrain with bias="none"',
    });
  }
  const modulesToSave = readModulesToSave(json.modules_to_save, file);
  const key = json.projection_prng_key ?? 0;
  if (typeof key !== 'number' || !Number.isInteger(key) || Math.abs(key) > MAX_PRNG_KEY) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'projection_prng_key',
      problem: `${shown(key)} must be an integer (at most 2^53 in magnitude)`,
    });
  }
  const targetModules = read.stringsOrString('target_modules');
  const layersToTransform = read.layerIndexes('layers_to_transform');
  const layersPattern = read.stringsOrString('layers_pattern');
  if (typeof targetModules === 'string' && (layersToTransform !== null || layersPattern !== null)) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: layersToTransform !== null ? 'layers_to_transform' : 'layers_pattern',
      problem: 'cannot be used when target_modules is a regex string',
      hint: 'give target_modules as a list, or put the layer selection into the regex',
    });
  }
  const warnings: string[] = [];
  if (read.bool('fan_in_fan_out')) {
    warnings.push(`${file}: fan_in_fan_out is true, but the targeted projections are nn.Linear; PEFT sets it to false`);
  }
  if (present(json.exclude_modules)) {
    warnings.push(`${file}: exclude_modules is ignored: PEFT's VeraConfig has no such field`);
  }
  return {
    format: 'peft',
    peftType: 'VERA',
    file,
    r,
    targetModules,
    excludeModules: null,
    layersToTransform,
    layersPattern,
    projectionPrngKey: key,
    saveProjection: read.bool('save_projection') ?? true,
    modulesToSave,
    baseModelNameOrPath: read.stringOrNull('base_model_name_or_path'),
    taskType,
    peftVersion: read.stringOrNull('peft_version'),
    warnings,
  };
}
