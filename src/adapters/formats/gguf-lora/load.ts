/**
 * Loads a llama.cpp GGUF LoRA adapter (a folder holding one *.gguf file, as convert_lora_to_gguf.py writes
 * it), validates it against the base model as llama.cpp does, and converts every factor to f32: the same
 * LoraAdapter the PEFT loader makes, so packing and serving do not know where it came from.
 *
 *   const adapter = await loadGgufAdapter('/adapters/sql', baseConfig, { maxLoraRank: 64 });
 *
 * Scale: alpha / rank per pair (rank = lora_b's ne[0]), or 1 when alpha is 0 (llama_adapter_lora_weight::
 * get_scale). Rows of q and k that llama.cpp's converter permuted for the "llama" arch are put back in
 * Hugging Face's order.
 */
import { basename, resolve } from 'node:path';
import type { ModelConfig } from '../../../model/config.ts';
import { GgufFile, GgufFormatError, type GgufTensor, shownName } from '../../../model/gguf/gguf-file.ts';
import { unpermuteRows } from '../../../model/gguf/permute.ts';
import { type ModuleKind, moduleIndex, moduleKinds } from '../../../model/modules.ts';
import { createError, isLoraplexError } from '../../../observability/errors.ts';
import { type AdapterDir, adapterFileLabel, openAdapterDir, openAdapterFile } from '../../adapter-files.ts';
import { checkFactorValues, MAX_LORA_SCALE } from '../../peft/weight-values.ts';
import type { LoraAdapter, LoraModuleWeights } from '../../types.ts';
import { type BaseContext, checkLayerExists, checkModuleShapes, checkRankLimit } from '../../validate.ts';
import { ggufFilesIn } from './adapter-dir.ts';
import { type GgufLoraConfig, LLAMA_CPP_ARCH, parseGgufLoraConfig } from './gguf-config.ts';
import { parseGgufLoraName } from './tensor-names.ts';

export { unpermuteRows }; // lora_b [out, rank] is a [rows, cols] matrix like any other

/** A LoraAdapter whose config is the GGUF file's metadata. */
export type GgufLoraAdapter = LoraAdapter<GgufLoraConfig>;

export interface LoadGgufOptions {
  maxLoraRank: number;
  name?: string; // defaults to the directory's name
  /** Every file read must lie inside it (symlinks resolved); defaults to the adapter directory itself. */
  root?: string;
}

export async function loadGgufAdapter(dir: string, base: ModelConfig, opts: LoadGgufOptions): Promise<GgufLoraAdapter> {
  const name = opts.name ?? basename(resolve(dir));
  const d = await openAdapterDir(name, dir, opts.root);
  const fileName = await theGgufFile(d);
  const label = adapterFileLabel(name, fileName);
  const opened = await openAdapterFile(d, fileName, 'ADAPTER_WEIGHTS_INVALID');
  if (!opened) throw createError('ADAPTER_FILE_MISSING', { dir: `'${name}'`, file: fileName });
  try {
    const file = await GgufFile.fromHandle(opened.fh, opened.stats.size).catch((e) => {
      throw formatError(e, label);
    });
    const config = parseGgufLoraConfig(file.metadata, base, label);
    const pairs = pairTensors(file, base, label);
    const ctx: BaseContext = { config: base, file: label, trainedOn: config.baseModelNameOrPath };
    const permutedQk = LLAMA_CPP_ARCH[base.family].permutedQk;
    const baseKinds = moduleKinds(base);
    const modules = new Map<number, LoraModuleWeights>();
    const kinds = new Set<ModuleKind>();
    let sizeBytes = 0;
    let rankMax = 0;
    for (const p of pairs) {
      checkLayerExists(ctx, p.a.name, p.layer);
      // ggml's ne is numpy's shape reversed: lora_a [rank, in] and lora_b [out, rank], as PEFT's.
      const a = { tensor: p.a.name, shape: [...p.a.ne].reverse() };
      const b = { tensor: p.b.name, shape: [...p.b.ne].reverse() };
      const rank = b.shape.length === 2 ? b.shape[1] : 0;
      checkModuleShapes(ctx, { layer: p.layer, kind: p.kind, a, b, rank, rankSource: `lora_b ne[0] of '${p.base}'` });
      checkRankLimit(label, rank, `tensor '${p.b.name}'`, opts.maxLoraRank);
      const scale = config.loraAlpha === 0 ? 1 : config.loraAlpha / rank;
      if (Math.abs(scale) > MAX_LORA_SCALE) {
        throw createError('ADAPTER_INVALID_CONFIG', {
          file: label,
          field: 'adapter.lora.alpha',
          problem: `${config.loraAlpha} with rank ${rank} gives '${p.base}' the scale ${scale} (alpha/rank); it must be at most ${MAX_LORA_SCALE} in magnitude`,
          hint: 'alpha is usually rank or 2·rank; re-convert the adapter with its real lora_alpha',
        });
      }
      const aValues = await readFactor(file, p.a, label);
      let bValues = await readFactor(file, p.b, label);
      if (permutedQk && (p.kind === 'q_proj' || p.kind === 'k_proj')) {
        bValues = unpermuteRows(bValues, rank, p.kind === 'q_proj' ? base.numHeads : base.numKvHeads);
      }
      modules.set(moduleIndex(p.layer, p.kind, baseKinds), {
        kind: p.kind,
        layer: p.layer,
        rank,
        scale,
        a: aValues,
        b: bValues,
      });
      kinds.add(p.kind);
      sizeBytes += (aValues.length + bValues.length) * 4;
      rankMax = Math.max(rankMax, rank);
    }
    if (modules.size === 0) {
      throw createError('ADAPTER_TENSOR_MISSING', {
        file: label,
        problem: 'holds no LoRA tensors (".lora_a" / ".lora_b")',
        hint: "convert the adapter with llama.cpp's convert_lora_to_gguf.py",
      });
    }
    return {
      name,
      source: d.dir,
      rankMax,
      targets: baseKinds.filter((k) => kinds.has(k)),
      modules,
      config,
      sizeBytes,
      warnings: config.warnings,
    };
  } finally {
    await opened.fh.close();
  }
}

/** The one *.gguf file of the folder; none or several is an error naming the folder by adapter name. */
async function theGgufFile(d: AdapterDir): Promise<string> {
  const files = await ggufFilesIn(d.dir);
  if (files.length === 1) return files[0];
  if (files.length === 0) {
    throw createError('ADAPTER_FILE_MISSING', {
      dir: `'${d.name}'`,
      file: 'adapter_config.json or *.gguf file',
      hint: 'an adapter folder holds a PEFT adapter (adapter_config.json + adapter_model.safetensors) or one llama.cpp GGUF LoRA file',
    });
  }
  throw createError('ADAPTER_INVALID_CONFIG', {
    file: adapterFileLabel(d.name, '.'),
    problem: `holds ${files.length} .gguf files; a GGUF adapter folder holds exactly one`,
    hint: 'put each GGUF adapter in a folder of its own',
  });
}

interface TensorPair {
  base: string;
  layer: number;
  kind: ModuleKind;
  a: GgufTensor;
  b: GgufTensor;
}

/** lora_a / lora_b pairs by base tensor, in model order; a half pair is refused as llama.cpp does. */
function pairTensors(file: GgufFile, base: ModelConfig, label: string): TensorPair[] {
  const halves = new Map<string, { layer: number; kind: ModuleKind; a?: GgufTensor; b?: GgufTensor }>();
  for (const t of file.tensors.values()) {
    const parsed = parseGgufLoraName(t.name, base.family, label);
    if (parsed === null) continue;
    const entry = halves.get(parsed.base) ?? { layer: parsed.layer, kind: parsed.kind };
    entry[parsed.factor] = t;
    halves.set(parsed.base, entry);
  }
  const pairs: TensorPair[] = [];
  for (const [baseName, h] of halves) {
    if (!h.a || !h.b) {
      throw createError('ADAPTER_TENSOR_MISSING', {
        file: label,
        field: `tensor '${baseName}.lora_${h.a ? 'b' : 'a'}'`,
        problem: `is missing: the LoRA pair for '${baseName}' has only its lora_${h.a ? 'a' : 'b'}`,
        hint: 'the file is incomplete; re-convert the adapter',
      });
    }
    pairs.push({ base: baseName, layer: h.layer, kind: h.kind, a: h.a, b: h.b });
  }
  const kinds = moduleKinds(base);
  return pairs.sort((x, y) => x.layer - y.layer || kinds.indexOf(x.kind) - kinds.indexOf(y.kind));
}

async function readFactor(file: GgufFile, t: GgufTensor, label: string): Promise<Float32Array> {
  let data: Float32Array;
  try {
    data = await file.readF32(t);
  } catch (e) {
    throw formatError(e, label);
  }
  checkFactorValues(data, label, shownName(t.name));
  return data;
}

/** GGUF format errors and file-system errors (EIO, …) become ADAPTER_WEIGHTS_INVALID, naming no path. */
function formatError(e: unknown, label: string): unknown {
  if (isLoraplexError(e)) return e;
  if (e instanceof GgufFormatError) {
    return createError(
      'ADAPTER_WEIGHTS_INVALID',
      { file: label, problem: e.message, hint: 'the file is damaged or not a GGUF file; re-convert the adapter' },
      { cause: e },
    );
  }
  const errno = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof errno === 'string')
    return createError('ADAPTER_WEIGHTS_INVALID', { file: label, problem: `cannot be read (${errno})` });
  return e;
}
