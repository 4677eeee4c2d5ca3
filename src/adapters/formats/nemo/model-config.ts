/**
 * model_config.yaml of a NeMo LoRA .nemo: the PEFT section NeMo 1.x writes (peft.peft_scheme "lora",
 * peft.lora_tuning: adapter_dim, alpha, target_modules, variant, layer_selection, weight_tying and
 * position_embedding_strategy) and the base
 * model's sizes, read with the semantics of nemo/collections/nlp/parts/peft_config.py (LoraPEFTConfig,
 * get_target_modules). OmegaConf keeps `${a.b}` interpolations when it saves (alpha defaults to
 * `${peft.lora_tuning.adapter_dim}` in NeMo's configs), so plain node references are resolved; anything else
 * that changes the computation is refused, naming the field.
 */
import { parseDocument } from 'yaml';
import { createError } from '../../../observability/errors.ts';

/** NeMo 1.x module names (PEFT_MODULE_MAP); the megatron-core names (linear_qkv, …) are accepted too. */
export type NemoTarget = 'attention_qkv' | 'attention_dense' | 'mlp_fc1' | 'mlp_fc2';
const TARGET_ORDER: readonly NemoTarget[] = ['attention_qkv', 'attention_dense', 'mlp_fc1', 'mlp_fc2'];
const TARGET_ALIASES: Record<string, readonly NemoTarget[]> = {
  attention_qkv: ['attention_qkv'],
  attention_dense: ['attention_dense'],
  mlp_fc1: ['mlp_fc1'],
  mlp_fc2: ['mlp_fc2'],
  linear_qkv: ['attention_qkv'],
  linear_proj: ['attention_dense'],
  linear_fc1: ['mlp_fc1'],
  linear_fc2: ['mlp_fc2'],
  attention: ['attention_qkv', 'attention_dense'],
  mlp: ['mlp_fc1', 'mlp_fc2'],
  all: TARGET_ORDER,
};

export interface NemoModelSizes {
  hiddenSize: number | null;
  numAttentionHeads: number | null;
  numQueryGroups: number | null;
  kvChannels: number | null;
  ffnHiddenSize: number | null;
  numLayers: number | null;
  activation: string | null;
}

export interface NemoLoraConfig {
  format: 'nemo';
  file: string; // "adapter 'x': model_config.yaml", for messages
  /** "nemo": fused linear_qkv / linear_fc1 adapters (the default); "canonical": one adapter per q, k, v, gate, up. */
  variant: 'nemo' | 'canonical';
  adapterDim: number;
  alpha: number;
  targets: NemoTarget[]; // expanded and in model order
  /** NeMo's layer numbers are 1-based; null: every layer. */
  layerSelection: number[] | null;
  /** Tied-LoRA (weight_tying: true): one set of factors, saved under the first adapted layer, serves every one. */
  weightTying: boolean;
  model: NemoModelSizes;
  tensorParallel: number;
  pipelineParallel: number;
  baseModelNameOrPath: string | null; // restore_from_path: informational
  warnings: string[];
}

const MAX_INTERPOLATION_HOPS = 8;

export function parseNemoModelConfig(text: string, file: string): NemoLoraConfig {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      problem: `is not valid YAML (${e.code} at line ${e.linePos?.[0].line ?? '?'})`,
      hint: 're-save the .nemo with NeMo',
    });
  }
  const root = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (!isObject(root)) throw createError('ADAPTER_INVALID_CONFIG', { file, problem: 'is not a YAML mapping' });
  const r = new Reader(root, file);

  const scheme = r.optional('peft.peft_scheme');
  if (scheme === undefined || scheme === null) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'peft.peft_scheme',
      problem: 'is missing; a NeMo LoRA adapter says peft_scheme: lora',
      hint: 'is this a base model .nemo rather than a LoRA adapter?',
    });
  }
  if (scheme !== 'lora') {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'peft.peft_scheme',
      problem: `is ${JSON.stringify(scheme)}; loraplex serves NeMo LoRA adapters (peft_scheme: lora) only`,
    });
  }
  const weightTying = r.optional('peft.lora_tuning.weight_tying') === true;
  const strategy = r.optional('peft.lora_tuning.position_embedding_strategy') ?? null;
  if (weightTying && strategy !== null) {
    // ParallelLinearAdapterWeightTying: a per-layer position embedding enters the adapter's input (add, concat,
    // mlpconcat) or output (biasadd), which adds a constant per layer that LoRA factors cannot express.
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'peft.lora_tuning.position_embedding_strategy',
      problem: `is ${JSON.stringify(strategy)}; Tied-LoRA (weight_tying: true) is served without position embeddings only (null), which add a per-layer constant to the adapter's output`,
      hint: 'retrain with position_embedding_strategy: null, or merge the adapter into the base model',
    });
  }
  const variant = r.optional('peft.lora_tuning.variant') ?? 'nemo';
  if (variant !== 'nemo' && variant !== 'canonical') {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file,
      field: 'peft.lora_tuning.variant',
      problem: `is ${JSON.stringify(variant)}; NeMo LoRA variants are "nemo" (fused) and "canonical"`,
    });
  }
  const adapterDim = r.positiveInt('peft.lora_tuning.adapter_dim');
  const alphaValue = r.optional('peft.lora_tuning.alpha');
  let alpha = adapterDim; // ParallelLinearAdapter: alpha defaults to dim, so the scale is 1
  if (alphaValue !== undefined && alphaValue !== null) {
    if (typeof alphaValue !== 'number' || !Number.isFinite(alphaValue)) {
      throw createError('ADAPTER_INVALID_CONFIG', {
        file,
        field: 'peft.lora_tuning.alpha',
        problem: `is ${JSON.stringify(alphaValue)}; it must be a number`,
      });
    }
    alpha = alphaValue;
  }

  const warnings: string[] = [];
  return {
    format: 'nemo',
    file,
    variant,
    adapterDim,
    alpha,
    targets: parseTargets(r, file),
    layerSelection: parseLayerSelection(r),
    weightTying,
    model: {
      hiddenSize: r.optionalInt('hidden_size'),
      numAttentionHeads: r.optionalInt('num_attention_heads'),
      numQueryGroups: r.optionalInt('num_query_groups'),
      kvChannels: r.optionalInt('kv_channels'),
      ffnHiddenSize: r.optionalInt('ffn_hidden_size'),
      numLayers: r.optionalInt('num_layers'),
      activation: r.optionalString('activation'),
    },
    tensorParallel: r.optionalInt('tensor_model_parallel_size') ?? 1,
    pipelineParallel: r.optionalInt('pipeline_model_parallel_size') ?? 1,
    baseModelNameOrPath: r.optionalString('restore_from_path'),
    warnings,
  };
}

function parseTargets(r: Reader, file: string): NemoTarget[] {
  const raw = r.optional('peft.lora_tuning.target_modules');
  const list = raw === undefined || raw === null ? ['attention_qkv'] : raw; // NeMo's default
  if (!Array.isArray(list) || list.length === 0 || list.some((m) => typeof m !== 'string')) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field: 'peft.lora_tuning.target_modules',
      problem: `is ${JSON.stringify(raw)}; it must be a non-empty list of module names`,
    });
  }
  const targets = new Set<NemoTarget>();
  for (const m of list as string[]) {
    const expanded = Object.hasOwn(TARGET_ALIASES, m) ? TARGET_ALIASES[m] : undefined;
    if (!expanded) {
      throw createError('ADAPTER_UNSUPPORTED_TARGET', {
        file,
        field: 'peft.lora_tuning.target_modules',
        module: m.slice(0, 80),
        supported: ['attention_qkv', 'attention_dense', 'mlp_fc1', 'mlp_fc2', 'attention', 'mlp', 'all'],
      });
    }
    for (const t of expanded) targets.add(t);
  }
  return TARGET_ORDER.filter((t) => targets.has(t));
}

function parseLayerSelection(r: Reader): number[] | null {
  const raw = r.optional('peft.lora_tuning.layer_selection');
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw) || raw.some((n) => typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: r.file,
      field: 'peft.lora_tuning.layer_selection',
      problem: `is ${JSON.stringify(raw).slice(0, 80)}; it must be a list of layer numbers (1-based)`,
    });
  }
  return raw as number[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Dotted-path reads with OmegaConf node interpolation (`${a.b.c}`, `${.sibling}`). */
class Reader {
  constructor(
    private readonly root: Record<string, unknown>,
    readonly file: string,
  ) {}

  optional(path: string): unknown {
    return this.resolve(path, 0);
  }

  optionalInt(path: string): number | null {
    const v = this.optional(path);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.bad(path, v, 'a non-negative integer');
    return v;
  }

  optionalString(path: string): string | null {
    const v = this.optional(path);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') this.bad(path, v, 'a string');
    return v;
  }

  positiveInt(path: string): number {
    const v = this.optional(path);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.bad(path, v, 'a positive integer');
    return v;
  }

  private resolve(path: string, hops: number): unknown {
    let node: unknown = this.root;
    for (const part of path.split('.')) {
      if (!isObject(node) || !Object.hasOwn(node, part)) return undefined;
      node = node[part];
    }
    if (typeof node !== 'string' || !node.includes('${')) return node;
    const ref = /^\$\{(\.*)([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}$/.exec(node);
    if (!ref || hops >= MAX_INTERPOLATION_HOPS) {
      throw createError('ADAPTER_INVALID_CONFIG', {
        file: this.file,
        field: path,
        problem: `is ${JSON.stringify(node.slice(0, 80))}, an interpolation loraplex cannot resolve (only \${a.b.c} node references are)`,
        hint: 'save the config with OmegaConf.save(cfg, f, resolve=True)',
      });
    }
    // "${.x}" is relative to the node's parent, each further dot one level up (OmegaConf's rule).
    const parent = path.split('.').slice(0, -1);
    const base = ref[1].length === 0 ? [] : parent.slice(0, Math.max(0, parent.length - (ref[1].length - 1)));
    return this.resolve([...base, ref[2]].join('.'), hops + 1);
  }

  private bad(path: string, v: unknown, what: string): never {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: this.file,
      field: path,
      problem: `is ${JSON.stringify(v)?.slice(0, 80)}; it must be ${what}`,
    });
  }
}
