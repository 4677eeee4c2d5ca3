/**
 * adapter_config.json of a Hugging Face PEFT LoRA adapter, read with PEFT 0.21's LoraConfig semantics.
 * Everything that changes what the adapter computes at inference is either honoured or refused with an
 * error naming the field; training-only fields (lora_dropout, init details) are recorded or ignored.
 */

import { jsonErrorPosition } from '../../model/safetensors.ts';
import { createError } from '../../observability/errors.ts';
import { FieldReader, type Json, shown } from './config-fields.ts';
import { type EdgeConfig, readEdgeConfig } from './edge-config.ts';

export interface PeftLoraConfig extends EdgeConfig {
  format: 'peft';
  file: string; // path of adapter_config.json, for messages
  r: number;
  loraAlpha: number;
  useRslora: boolean; // scale = alpha/√r instead of alpha/r
  useDora: boolean; // DoRA: each targeted module also has a magnitude vector (lora_magnitude_vector)
  /** Pattern → rank / alpha, in file order (PEFT takes the first pattern that matches). */
  rankPattern: [string, number][];
  alphaPattern: [string, number][];
  /** A list (exact name or dot-suffix), a regex (full match), "all-linear", or null (PEFT's default for the family). */
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  layersToTransform: number[] | number | null;
  layersPattern: string[] | string | null;
  fanInFanOut: boolean; // recorded; PEFT forces it off for nn.Linear targets
  loraDropout: number; // training only
  bias: 'none';
  baseModelNameOrPath: string | null; // informational: what the adapter was trained on
  taskType: string | null;
  peftVersion: string | null;
  initLoraWeights: boolean | string;
  /** Things worth logging that do not stop the load. */
  warnings: string[];
}

/** Task types whose adapters apply to a causal language model's decoder layers. */
export const CAUSAL_TASK_TYPES = new Set(['CAUSAL_LM', 'FEATURE_EXTRACTION']);

/** LoRA variants whose forward pass differs from plain LoRA (PEFT's `is_lora_variant` fields and QALoRA). */
const VARIANT_FIELDS: [field: string, what: string][] = [
  ['alora_invocation_tokens', 'Activated LoRA (aLoRA)'],
  ['velora_config', 'VeLoRA'],
  ['monteclora_config', 'MonteCLoRA'],
  ['use_bdlora', 'block-diagonal LoRA (BD-LoRA)'],
  ['arrow_config', 'Arrow routing'],
  ['kasa_config', 'KaSA'],
  ['use_qalora', 'QALoRA'],
];

/** Initialisations that rewrite the base weights: the saved adapter only works on that rewritten base. */
const BASE_REWRITING_INITS: [prefix: string, hint: string][] = [
  ['pissa', 'convert it to a plain LoRA with save_pretrained(..., path_initial_model_for_weight_conversion=...)'],
  ['olora', 'convert it to a plain LoRA with save_pretrained(..., path_initial_model_for_weight_conversion=...)'],
  ['corda', 'convert it to a plain LoRA with save_pretrained(..., path_initial_model_for_weight_conversion=...)'],
  ['lora_ga', 'convert it to a plain LoRA with save_pretrained(..., path_initial_model_for_weight_conversion=...)'],
  ['loftq', 'LoftQ adapters pair with their quantized base; merge it into that base and serve the merged model'],
];

/** adapter_config.json's object; anything else is an ADAPTER_INVALID_CONFIG that never quotes the text. */
export function parseConfigJson(text: string, file: string): Json {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    // JSON.parse's message quotes the text it failed on: name only the position.
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      problem: `not valid JSON${jsonErrorPosition(e)}`,
      hint: "re-create it with PEFT's save_pretrained",
    });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw createError('ADAPTER_INVALID_CONFIG', { file, problem: 'must hold a JSON object' });
  }
  return raw as Json;
}

export function parsePeftAdapterConfig(text: string, file: string): PeftLoraConfig {
  const json = parseConfigJson(text, file);
  const read = new FieldReader(json, file);

  const peftType = json.peft_type;
  if (peftType !== 'LORA') {
    throw createError(peftType === undefined ? 'ADAPTER_INVALID_CONFIG' : 'ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'peft_type',
      problem:
        peftType === undefined
          ? 'missing; a LoRA adapter has "peft_type": "LORA"'
          : `${shown(peftType)} is not supported; loraplex serves LoRA adapters ("peft_type": "LORA")`,
    });
  }
  rejectUnsupported(json, file);

  const r = read.positiveInt('r');
  if (r === undefined) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'r',
      problem: 'missing; the LoRA rank is required',
      hint: 'add "r": <rank> (the number of rows of each lora_A)',
    });
  }
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
    const known = bias === 'all' || bias === 'lora_only';
    throw createError(known ? 'ADAPTER_UNSUPPORTED_FEATURE' : 'ADAPTER_INVALID_CONFIG', {
      file,
      field: 'bias',
      problem: known
        ? `${shown(bias)} is not supported: the adapter also trains biases; only "none" is served`
        : `${shown(bias)} is not a PEFT bias mode ("none", "all", "lora_only")`,
      hint: known ? 'retrain with bias="none"' : undefined,
    });
  }

  const targetModules = read.stringsOrString('target_modules');
  const layersToTransform = read.layerIndexes('layers_to_transform');
  const layersPattern = read.stringsOrString('layers_pattern');
  // The same consistency rules LoraConfig.__post_init__ enforces.
  if (typeof targetModules === 'string' && (layersToTransform !== null || layersPattern !== null)) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: layersToTransform !== null ? 'layers_to_transform' : 'layers_pattern',
      problem: 'cannot be used when target_modules is a regex string',
      hint: 'give target_modules as a list, or put the layer selection into the regex',
    });
  }
  if (layersPattern !== null && layersPattern.length > 0 && layersToTransform === null) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'layers_pattern',
      problem: 'is set but layers_to_transform is not',
    });
  }

  const warnings: string[] = [];
  const fanInFanOut = read.bool('fan_in_fan_out') ?? false;
  if (fanInFanOut) {
    warnings.push(
      `${file}: fan_in_fan_out is true, but the targeted projections are nn.Linear; PEFT sets it to false for them, and so does loraplex`,
    );
  }

  return {
    format: 'peft',
    file,
    r,
    loraAlpha: read.finiteNumber('lora_alpha') ?? 8, // PEFT's default
    useRslora: read.bool('use_rslora') ?? false,
    useDora: read.bool('use_dora') ?? false,
    rankPattern: read.patternMap('rank_pattern', true),
    alphaPattern: read.patternMap('alpha_pattern', false),
    targetModules,
    excludeModules: read.stringsOrString('exclude_modules'),
    layersToTransform,
    layersPattern,
    fanInFanOut,
    loraDropout: read.finiteNumber('lora_dropout') ?? 0,
    bias: 'none',
    baseModelNameOrPath: read.stringOrNull('base_model_name_or_path'),
    taskType,
    peftVersion: read.stringOrNull('peft_version'),
    initLoraWeights: readInit(json, file),
    ...readEdgeConfig(json, file),
    warnings,
  };
}

export function present(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

function rejectUnsupported(json: Json, file: string): void {
  const unsupported = (field: string, problem: string, hint?: string) =>
    createError('ADAPTER_UNSUPPORTED_FEATURE', { file, field, problem, hint });
  for (const [field, what] of VARIANT_FIELDS) {
    if (present(json[field])) throw unsupported(field, `${what} is not supported; only plain LoRA is served`);
  }
  if (json.lora_bias === true) {
    throw unsupported(
      'lora_bias',
      'a bias on lora_B (lora_bias: true) is not supported',
      'retrain with lora_bias=False',
    );
  }
  if (present(json.layer_replication)) {
    throw unsupported('layer_replication', 'adapters that replicate base layers are not supported');
  }
  if (present(json.target_parameters)) {
    throw unsupported('target_parameters', `${shown(json.target_parameters)}: LoRA on raw parameters is not supported`);
  }
}

function readInit(json: Json, file: string): boolean | string {
  const init = json.init_lora_weights;
  if (init === undefined || init === null) return true;
  if (typeof init === 'boolean') return init;
  if (typeof init !== 'string') {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'init_lora_weights',
      problem: `${shown(init)} must be a boolean or a string`,
    });
  }
  const rewriting = BASE_REWRITING_INITS.find(([prefix]) => init.toLowerCase().startsWith(prefix));
  if (rewriting) {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'init_lora_weights',
      problem: `${shown(init)} rewrites the base model's weights, so this adapter only works on that rewritten base`,
      hint: rewriting[1],
    });
  }
  return init;
}
