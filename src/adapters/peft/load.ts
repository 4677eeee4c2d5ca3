/**
 * Loads a Hugging Face PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors),
 * validates it against the base model, and converts every factor to f32. A DoRA adapter (use_dora) also gets
 * its output scales, computed from the base weights (options.baseWeights) it will be served with.
 *
 *   const adapter = await loadPeftAdapter('/adapters/sql', baseConfig, { maxLoraRank: 64, baseWeights });
 *   const packed = packAdapter(adapter, baseConfig);
 *
 * Nothing is read from the weights file but its header until config, names, ranks and shapes all agree.
 */
import type { FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { ModelConfig } from '../../model/config.ts';
import { type ModuleKind, moduleIndex, moduleKinds, moduleShape } from '../../model/modules.ts';
import { SafetensorsError, SafetensorsFile } from '../../model/safetensors.ts';
import { specOf } from '../../model/spec/index.ts';
import { createError, isLoraplexError } from '../../observability/errors.ts';
import { type AdapterDir, adapterFileLabel, openAdapterDir, openAdapterFile } from '../adapter-files.ts';
import type { BaseProjections } from '../base-projections.ts';
import { doraOutScale } from '../dora.ts';
import { withoutBaseCopies } from '../kinds/edge-base-copies.ts';
import { edgeBytes } from '../kinds/edge-modules.ts';
import type { LoraAdapter, LoraModuleWeights } from '../types.ts';
import type { TensorShape } from '../validate.ts';
import { loadEdgeModules } from './edge-load.ts';
import { splitEdgeTensors } from './edge-tensors.ts';
import { planPeftModules } from './layout.ts';
import { isVeraConfig, type PeftAdapterConfig, type PeftVeraConfig, parsePeftConfig } from './vera-config.ts';
import { loadVeraModules } from './vera-load.ts';
import { checkFactorValues } from './weight-values.ts';
import { findPeftWeights } from './weights-file.ts';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);
const MISSING_HINT =
  "a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors, as PEFT's save_pretrained writes them";

export interface LoadPeftOptions {
  maxLoraRank: number;
  name?: string; // defaults to the directory's name
  /** Every file read must lie inside it (symlinks resolved); defaults to the adapter directory itself. */
  root?: string;
  /** The served base weights: DoRA adapters need them (their norms of W + ΔW); plain LoRA never reads them. */
  baseWeights?: BaseProjections;
}

export async function loadPeftAdapter(
  dir: string,
  base: ModelConfig,
  opts: LoadPeftOptions,
): Promise<LoraAdapter<PeftAdapterConfig>> {
  const name = opts.name ?? basename(resolve(dir));
  const d = await openAdapterDir(name, dir, opts.root);
  const config = parsePeftConfig(await readConfig(d), adapterFileLabel(name, PEFT_CONFIG_FILE));
  const weightsName = await findPeftWeights(d);
  const weightsFile = adapterFileLabel(name, weightsName);
  const opened = await openAdapterFile(d, weightsName, 'ADAPTER_WEIGHTS_INVALID');
  if (!opened) throw createError('ADAPTER_FILE_MISSING', { dir: `'${name}'`, file: weightsName, hint: MISSING_HINT });
  try {
    const file = await openWeights(opened.fh, weightsFile);
    const shapes: TensorShape[] = [];
    for (const t of file.tensors.values()) {
      if (!FLOAT_DTYPES.has(t.dtype)) {
        throw createError('ADAPTER_WEIGHTS_INVALID', {
          file: weightsFile,
          field: `tensor '${t.name}'`,
          problem: `has dtype ${t.dtype}; LoRA factors must be F32, F16 or BF16`,
          hint: 'save the adapter in float32, float16 or bfloat16',
        });
      }
      shapes.push({ tensor: t.name, shape: t.shape });
    }
    if (isVeraConfig(config)) return await loadVera(file, config, base, opts, name, d.dir, weightsFile);
    const split = splitEdgeTensors(shapes, specOf(base.family));
    const hasEdges = split.hasEdges || config.trainableTokenIndices.length > 0;
    const layout = planPeftModules(config, split.layerTensors, base, weightsFile, opts.maxLoraRank, hasEdges);
    if (config.useDora && !opts.baseWeights) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file: config.file,
        field: 'use_dora',
        problem: "DoRA needs the base model's weights at load, and this loader has none",
        hint: 'serve it from a model directory without --merge-adapter, or merge it with merge_and_unload()',
      });
    }

    const modules = new Map<number, LoraModuleWeights>();
    const baseKinds = moduleKinds(base);
    const kinds = new Set<ModuleKind>();
    let sizeBytes = 0;
    let rankMax = 0;
    for (const m of layout.modules) {
      const a = await readFactor(file, m.a.tensor);
      const b = await readFactor(file, m.b.tensor);
      const mod: LoraModuleWeights = { kind: m.kind, layer: m.layer, rank: m.rank, scale: m.scale, a, b };
      if (m.magnitude && opts.baseWeights) {
        const magnitude = await readFactor(file, m.magnitude.tensor);
        const { inFeatures: k, outFeatures: n } = moduleShape(base, m.kind);
        const w = await opts.baseWeights.weight(m.layer, m.kind);
        mod.dora = { magnitude, outScale: doraOutScale(w, n, k, mod, magnitude, weightsFile) };
        sizeBytes += 2 * n * 4;
      }
      modules.set(moduleIndex(m.layer, m.kind, baseKinds), mod);
      kinds.add(m.kind);
      sizeBytes += (a.length + b.length) * 4;
      rankMax = Math.max(rankMax, m.rank);
    }
    const loaded = hasEdges
      ? await loadEdgeModules(
          split.edges,
          { config, base, file: weightsFile, maxLoraRank: opts.maxLoraRank },
          (tensor) => readFactor(file, tensor),
        )
      : undefined;
    const { edges, dropped } = await withoutBaseCopies(loaded, opts.baseWeights);
    for (const t of [edges?.embeddingLora, edges?.lmHeadLora]) if (t) rankMax = Math.max(rankMax, t.rank);
    return {
      name,
      source: d.dir,
      ...(edges ? { edges } : {}),
      rankMax,
      targets: baseKinds.filter((k) => kinds.has(k)),
      modules,
      config,
      sizeBytes: sizeBytes + edgeBytes(edges),
      warnings: [...layout.warnings, ...droppedWarnings(weightsFile, dropped)],
    };
  } finally {
    await opened.fh.close();
  }
}

/** VeRA: its shared matrices and per-module vectors become per-module LoRA factors (scale 1) at load. */
async function loadVera(
  file: SafetensorsFile,
  config: PeftVeraConfig,
  base: ModelConfig,
  opts: LoadPeftOptions,
  name: string,
  source: string,
  weightsFile: string,
): Promise<LoraAdapter<PeftVeraConfig>> {
  const read = (tensor: string) => readFactor(file, tensor);
  const { edges: saved, ...vera } = await loadVeraModules(file, config, base, opts.maxLoraRank, read);
  const { edges, dropped } = await withoutBaseCopies(saved, opts.baseWeights);
  return {
    name,
    source,
    rankMax: config.r,
    ...vera,
    ...(edges ? { edges } : {}),
    sizeBytes: vera.sizeBytes - edgeBytes(saved) + edgeBytes(edges),
    warnings: [...vera.warnings, ...droppedWarnings(weightsFile, dropped)],
    config,
  };
}

/** Saved copies of embed_tokens / lm_head that equal the base's are dropped (kinds/edge-base-copies.ts); said once. */
function droppedWarnings(file: string, dropped: string[]): string[] {
  return dropped.length === 0
    ? []
    : [
        `${file}: its saved ${dropped.join(' and ')} equal the base model's (PEFT's save_embedding_layers) and are not held`,
      ];
}

async function readConfig(d: AdapterDir): Promise<string> {
  const file = adapterFileLabel(d.name, PEFT_CONFIG_FILE);
  const opened = await openAdapterFile(d, PEFT_CONFIG_FILE, 'ADAPTER_INVALID_CONFIG');
  if (!opened)
    throw createError('ADAPTER_FILE_MISSING', { dir: `'${d.name}'`, file: PEFT_CONFIG_FILE, hint: MISSING_HINT });
  try {
    if (opened.stats.size > MAX_CONFIG_BYTES) {
      throw createError('ADAPTER_INVALID_CONFIG', {
        file,
        problem: `is ${opened.stats.size} bytes; an adapter config is at most ${MAX_CONFIG_BYTES}`,
      });
    }
    const buf = Buffer.alloc(opened.stats.size);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await opened.fh.read(buf, done, buf.length - done, done);
      if (bytesRead === 0) break; // shrank meanwhile: parse what is there (a truncated JSON fails cleanly)
      done += bytesRead;
    }
    return buf.subarray(0, done).toString('utf8');
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException | null)?.code;
    if (isLoraplexError(e) || typeof errno !== 'string') throw e;
    throw createError('ADAPTER_INVALID_CONFIG', { file, problem: `cannot be read (${errno})` });
  } finally {
    await opened.fh.close();
  }
}

async function openWeights(fh: FileHandle, label: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.fromHandle(fh, label);
  } catch (e) {
    throw weightsError(e, label);
  }
}

async function readFactor(file: SafetensorsFile, tensor: string): Promise<Float32Array> {
  let data: Float32Array;
  try {
    data = (await file.readF32(tensor)).data;
  } catch (e) {
    throw weightsError(e, file.path);
  }
  checkFactorValues(data, file.path, tensor);
  return data;
}

/** Safetensors format errors and file-system errors (EIO, …) both become ADAPTER_WEIGHTS_INVALID. */
function weightsError(e: unknown, label: string): unknown {
  const fsCode = (e as NodeJS.ErrnoException | null)?.code;
  if (isLoraplexError(e) || (!(e instanceof SafetensorsError) && typeof fsCode !== 'string')) return e;
  const prefix = `${label}: `;
  const message = (e as Error).message;
  // A file-system error's message holds the path it failed on: report only its code.
  const problem = message.startsWith(prefix) ? message.slice(prefix.length) : `cannot be read (${fsCode})`;
  return createError(
    'ADAPTER_WEIGHTS_INVALID',
    { file: label, problem, hint: 'the file is damaged or not safetensors; re-save the adapter' },
    { cause: e },
  );
}
