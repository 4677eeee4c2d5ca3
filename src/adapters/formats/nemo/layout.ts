/**
 * Lays NeMo LoRA tensors over the base model's projections, before any weight is read.
 *
 * NeMo adds each adapter's output to a megatron-core GEMM's output (mcore_mixins.py), so its linear_out rows
 * follow that GEMM's row order:
 *  - linear_qkv interleaves heads per KV group: for group g, its heads/groups q heads, then its k head, then its
 *    v head, head_dim rows each (convert_llama_hf_to_nemo.py builds the base weight so; TransformFns.split_qkv in
 *    nemo/lightning/io/state.py undoes it for base weights and LoRA linear_out alike). The rows are taken back
 *    to Hugging Face's q | k | v order here.
 *  - linear_fc1 is gate | up (torch.cat in convert_llama_hf_to_nemo.py; TransformFns.split_fc1 halves it).
 *  - linear_proj is o, linear_fc2 is down, rows as they are.
 * A fused adapter shares one A (linear_in) across q, k and v (and gate, up), exactly as NeMo's LoRA exporter
 * duplicates it (TransformFns.duplicate3 / duplicate2 in nemo/collections/llm/gpt/model/llama.py). The scale is
 * alpha / adapter_dim (ParallelLinearAdapter.forward).
 *
 * Where the family's spec fuses what NeMo splits (canonical q/k/v adapters on Phi-3's qkv_proj), the module's
 * factors are block-diagonal: A stacks the parts' A, B places each part's B on its own rows and columns, so
 * B·A is the parts' products side by side and the rank is the sum of theirs.
 */
import type { ModelConfig } from '../../../model/config.ts';
import { type ModuleKind, moduleShape } from '../../../model/modules.ts';
import { specOf } from '../../../model/spec/index.ts';
import { createError } from '../../../observability/errors.ts';
import { MAX_LORA_SCALE } from '../../peft/weight-values.ts';
import { checkRankLimit, layerCount } from '../../validate.ts';
import type { NemoLoraConfig, NemoTarget } from './model-config.ts';
import { type NemoPart, parseNemoTensorName } from './tensor-names.ts';

/** One NeMo adapter factor pair, and which rows of its linear_out (null: all, in order) a module takes. */
export interface NemoPiece {
  linearIn: string;
  linearOut: string;
  rows: Int32Array | null;
}

export interface NemoPlannedModule {
  layer: number;
  kind: ModuleKind;
  rank: number; // adapter_dim × pieces
  scale: number;
  pieces: NemoPiece[];
}

interface Found {
  linear_in?: readonly number[];
  linear_out?: readonly number[];
  names: { linear_in?: string; linear_out?: string };
}

export function planNemoModules(
  config: NemoLoraConfig,
  tensors: Map<string, readonly number[]>,
  base: ModelConfig,
  weightsFile: string,
  maxLoraRank: number,
): NemoPlannedModule[] {
  checkModelSizes(config, base);
  const baseModel = config.baseModelNameOrPath;
  const mismatch = (problem: string) => createError('ADAPTER_BASE_MISMATCH', { file: weightsFile, problem, baseModel });

  // Group the tensors by (layer, target, part).
  const found = new Map<string, Found>();
  for (const [tensor, shape] of tensors) {
    const n = parseNemoTensorName(tensor, weightsFile);
    if (n.variant !== 'either' && n.variant !== config.variant) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsFile,
        field: `tensor '${tensor}'`,
        problem: `is a ${n.variant === 'canonical' ? 'canonical (unfused)' : 'fused'} LoRA tensor, but ${config.file} says peft.lora_tuning.variant ${config.variant}`,
        hint: 'the config and the weights disagree; save both from the same adapter',
      });
    }
    if (n.layer >= base.numLayers) {
      throw mismatch(
        `LoRA tensor '${tensor}' is for layer ${n.layer}, but the base model has ${layerCount(base.numLayers)}`,
      );
    }
    if (!config.targets.includes(n.target)) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsFile,
        field: `tensor '${tensor}'`,
        problem: `adapts ${n.target}, which ${config.file} does not target (peft.lora_tuning.target_modules: ${config.targets.join(', ')})`,
        hint: 'the config and the weights disagree; save both from the same adapter',
      });
    }
    if (config.layerSelection && !config.layerSelection.includes(n.layer + 1)) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsFile,
        field: `tensor '${tensor}'`,
        problem: `is for layer ${n.layer + 1} (1-based), which peft.lora_tuning.layer_selection leaves out`,
      });
    }
    const key = `${n.layer}/${n.target}/${n.part}`;
    const entry = found.get(key) ?? { names: {} };
    if (entry.names[n.factor]) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsFile,
        field: `tensor '${tensor}'`,
        problem: `is a second ${n.factor} for the same adapter (the first is '${entry.names[n.factor]}')`,
      });
    }
    entry[n.factor] = shape;
    entry.names[n.factor] = tensor;
    found.set(key, entry);
  }
  if (found.size === 0) {
    throw createError('ADAPTER_TENSOR_MISSING', {
      file: weightsFile,
      problem: 'holds no LoRA tensors (linear_in / linear_out)',
    });
  }

  const rank = config.adapterDim;
  const scale = config.alpha / rank;
  if (!Number.isFinite(scale) || Math.abs(scale) > MAX_LORA_SCALE) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: config.file,
      field: 'peft.lora_tuning.alpha',
      problem: `${config.alpha} with adapter_dim ${rank} gives the scale ${scale}; it must be finite and at most ${MAX_LORA_SCALE} in magnitude`,
    });
  }
  checkRankLimit(config.file, rank, 'peft.lora_tuning.adapter_dim', maxLoraRank);

  const spec = specOf(base.family);
  const kindOf = (role: string) => spec.modules.find((m) => m.role === role)?.kind as ModuleKind;
  const sizes = nemoSizes(base);
  const layers = config.layerSelection
    ? [...new Set(config.layerSelection)].sort((a, b) => a - b).map((l) => l - 1)
    : [...Array(base.numLayers).keys()];

  const out: NemoPlannedModule[] = [];
  for (const layer of layers) {
    if (layer >= base.numLayers) {
      throw mismatch(
        `${config.file}: peft.lora_tuning.layer_selection names layer ${layer + 1} (1-based), but the base model has ${layerCount(base.numLayers)}`,
      );
    }
    for (const target of config.targets) {
      // The factors of each part, checked against the sizes NeMo gives that adapter (peft_config.py).
      const parts = partsOf(target, config.variant);
      const pieces = new Map<NemoPart, NemoPiece>();
      for (const part of parts) {
        const f = found.get(`${layer}/${target}/${part}`);
        if (!f?.linear_in || !f.linear_out) {
          const has = f?.names.linear_in ?? f?.names.linear_out;
          throw createError('ADAPTER_TENSOR_MISSING', {
            file: weightsFile,
            field: has ? `tensor '${has}'` : undefined,
            problem: has
              ? `has no ${f?.linear_in ? 'linear_out' : 'linear_in'} beside it`
              : `no ${target}${part === 'all' ? '' : ` ${part}`} adapter for layer ${layer} (0-based), which ${config.file} targets`,
            hint: 'the weights file is incomplete, or the config belongs to another adapter',
          });
        }
        const [inFeatures, outFeatures] = sizes[part === 'all' ? target : part];
        checkFactor(f.names.linear_in as string, f.linear_in, [rank, inFeatures], weightsFile, config, base);
        checkFactor(f.names.linear_out as string, f.linear_out, [outFeatures, rank], weightsFile, config, base);
        pieces.set(part, {
          linearIn: f.names.linear_in as string,
          linearOut: f.names.linear_out as string,
          rows: null,
        });
      }
      for (const m of modulesOf(target, pieces, spec, kindOf, base)) {
        const moduleRank = rank * m.pieces.length;
        checkRankLimit(
          config.file,
          moduleRank,
          `peft.lora_tuning.adapter_dim × ${m.pieces.length} parts fused into ${m.kind}`,
          maxLoraRank,
        );
        out.push({ layer, kind: m.kind, rank: moduleRank, scale, pieces: m.pieces });
      }
    }
  }
  return out;
}

/** The base sizes a NeMo adapter's factors have: [in, out] per NeMo module and part. */
function nemoSizes(base: ModelConfig): Record<NemoTarget | Exclude<NemoPart, 'all'>, [number, number]> {
  const h = base.hiddenSize;
  const q = base.numHeads * base.headDim;
  const kv = base.numKvHeads * base.headDim;
  const i = base.intermediateSize;
  return {
    attention_qkv: [h, q + 2 * kv],
    attention_dense: [q, h],
    mlp_fc1: [h, 2 * i],
    mlp_fc2: [i, h],
    q: [h, q],
    k: [h, kv],
    v: [h, kv],
    gate: [h, i],
    up: [h, i],
  };
}

function partsOf(target: NemoTarget, variant: 'nemo' | 'canonical'): NemoPart[] {
  if (variant === 'canonical' && target === 'attention_qkv') return ['q', 'k', 'v'];
  if (variant === 'canonical' && target === 'mlp_fc1') return ['gate', 'up'];
  return ['all'];
}

/** The family's modules one NeMo adapter feeds, each with the pieces (and rows) that make its factors. */
function modulesOf(
  target: NemoTarget,
  pieces: Map<NemoPart, NemoPiece>,
  spec: ReturnType<typeof specOf>,
  kindOf: (role: string) => ModuleKind,
  base: ModelConfig,
): { kind: ModuleKind; pieces: NemoPiece[] }[] {
  if (target === 'attention_dense') return [{ kind: kindOf('o'), pieces: [pieces.get('all') as NemoPiece] }];
  if (target === 'mlp_fc2') return [{ kind: kindOf('down'), pieces: [pieces.get('all') as NemoPiece] }];
  const group = target === 'attention_qkv' ? spec.qkv : spec.gateUp;
  const names: NemoPart[] = target === 'attention_qkv' ? ['q', 'k', 'v'] : ['gate', 'up'];
  const fused = pieces.get('all');
  if (fused) {
    // One shared A; B's rows back in Hugging Face order, then cut along the family's projections.
    const order = target === 'attention_qkv' ? qkvRowsInHfOrder(base) : null;
    let start = 0;
    return group.map((kind) => {
      const n = moduleShape(base, kind).outFeatures;
      const rows = new Int32Array(n);
      for (let r = 0; r < n; r++) rows[r] = order ? order[start + r] : start + r;
      start += n;
      return { kind, pieces: [{ ...fused, rows }] };
    });
  }
  if (group.length === 1) return [{ kind: group[0], pieces: names.map((p) => pieces.get(p) as NemoPiece) }];
  return group.map((kind, i) => ({ kind, pieces: [pieces.get(names[i]) as NemoPiece] }));
}

/** For each row of q | k | v in Hugging Face order, its row in megatron-core's per-group interleaved linear_qkv. */
export function qkvRowsInHfOrder(base: Pick<ModelConfig, 'numHeads' | 'numKvHeads' | 'headDim'>): Int32Array {
  const { numHeads, numKvHeads, headDim } = base;
  const perGroup = numHeads / numKvHeads;
  const rows = new Int32Array((numHeads + 2 * numKvHeads) * headDim);
  let r = 0;
  const head = (megatronHead: number) => {
    for (let d = 0; d < headDim; d++) rows[r++] = megatronHead * headDim + d;
  };
  for (let h = 0; h < numHeads; h++) head(Math.floor(h / perGroup) * (perGroup + 2) + (h % perGroup));
  for (let g = 0; g < numKvHeads; g++) head(g * (perGroup + 2) + perGroup);
  for (let g = 0; g < numKvHeads; g++) head(g * (perGroup + 2) + perGroup + 1);
  return rows;
}

function checkFactor(
  tensor: string,
  shape: readonly number[],
  expected: [number, number],
  file: string,
  config: NemoLoraConfig,
  base: ModelConfig,
) {
  const text = (s: readonly number[]) => `[${s.join(', ')}]`;
  if (shape.length !== 2) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file,
      field: `tensor '${tensor}'`,
      problem: `has shape ${text(shape)}; a LoRA factor is a matrix`,
    });
  }
  const isIn = tensor.endsWith('.linear_in.weight');
  const rankAt = isIn ? 0 : 1;
  if (shape[rankAt] !== config.adapterDim) {
    throw createError('ADAPTER_TENSOR_SHAPE', {
      file,
      field: `tensor '${tensor}'`,
      problem: `has shape ${text(shape)}, rank ${shape[rankAt]}, but ${config.file} says peft.lora_tuning.adapter_dim ${config.adapterDim}`,
      hint: 'the config and the weights disagree; save both from the same adapter',
    });
  }
  if (shape[0] !== expected[0] || shape[1] !== expected[1]) {
    throw createError('ADAPTER_BASE_MISMATCH', {
      file,
      problem:
        `LoRA tensor '${tensor}' has shape ${text(shape)}, but on this base model (hidden_size ${base.hiddenSize}, ` +
        `${base.numHeads} heads, ${base.numKvHeads} KV heads of ${base.headDim}, intermediate_size ${base.intermediateSize}) it is ${text(expected)}`,
      baseModel: config.baseModelNameOrPath,
    });
  }
}

/** The sizes model_config.yaml records must be the base model's: the qkv row order depends on them. */
function checkModelSizes(config: NemoLoraConfig, base: ModelConfig) {
  const m = config.model;
  const heads = m.numAttentionHeads;
  const checks: [string, number | null, number, string][] = [
    ['hidden_size', m.hiddenSize, base.hiddenSize, 'hidden_size'],
    ['num_attention_heads', heads, base.numHeads, 'num_attention_heads'],
    ['num_query_groups', m.numQueryGroups ?? heads, base.numKvHeads, 'num_key_value_heads'],
    [
      'kv_channels',
      m.kvChannels ?? (m.hiddenSize !== null && heads ? m.hiddenSize / heads : null),
      base.headDim,
      'head_dim',
    ],
    ['ffn_hidden_size', m.ffnHiddenSize, base.intermediateSize, 'intermediate_size'],
    ['num_layers', m.numLayers, base.numLayers, 'num_hidden_layers'],
  ];
  for (const [field, value, expected, hfName] of checks) {
    if (value !== null && value !== expected) {
      throw createError('ADAPTER_BASE_MISMATCH', {
        file: config.file,
        problem: `${field} is ${value}, but the base model's ${hfName} is ${expected}`,
        baseModel: config.baseModelNameOrPath,
      });
    }
  }
}
