/**
 * Loads a Hugging Face PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors),
 * validates it against the base model, and converts every factor to f32.
 *
 *   const adapter = await loadPeftAdapter('/adapters/sql', baseConfig, { maxLoraRank: 64 });
 *   const packed = packAdapter(adapter, baseConfig);
 *
 * Nothing is read from the weights file but its header until config, names, ranks and shapes all agree.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { ModelConfig } from '../../model/config.ts';
import { MODULE_KINDS, type ModuleKind, moduleIndex } from '../../model/modules.ts';
import { SafetensorsError, SafetensorsFile } from '../../model/safetensors.ts';
import { createError } from '../../observability/errors.ts';
import type { LoraAdapter, LoraModuleWeights } from '../types.ts';
import type { TensorShape } from '../validate.ts';
import { parsePeftAdapterConfig } from './adapter-config.ts';
import { planPeftModules } from './layout.ts';
import { findPeftWeights } from './weights-file.ts';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface LoadPeftOptions {
  maxLoraRank: number;
  name?: string; // defaults to the directory's name
}

export async function loadPeftAdapter(dir: string, base: ModelConfig, opts: LoadPeftOptions): Promise<LoraAdapter> {
  const path = resolve(dir);
  const name = opts.name ?? basename(path);
  const dirStat = await stat(path).catch(() => null);
  if (!dirStat?.isDirectory()) throw createError('ADAPTER_NOT_FOUND', { name, where: `${path} (no such directory)` });

  const config = parsePeftAdapterConfig(await readConfig(path), join(path, PEFT_CONFIG_FILE));
  const weightsFile = await findPeftWeights(path);
  const file = await openWeights(weightsFile);
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
  const layout = planPeftModules(config, shapes, base, weightsFile, opts.maxLoraRank);

  const modules = new Map<number, LoraModuleWeights>();
  const kinds = new Set<ModuleKind>();
  let sizeBytes = 0;
  let rankMax = 0;
  for (const m of layout.modules) {
    const a = await readFactor(file, m.a.tensor);
    const b = await readFactor(file, m.b.tensor);
    modules.set(moduleIndex(m.layer, m.kind), { kind: m.kind, layer: m.layer, rank: m.rank, scale: m.scale, a, b });
    kinds.add(m.kind);
    sizeBytes += (a.length + b.length) * 4;
    rankMax = Math.max(rankMax, m.rank);
  }
  return {
    name,
    source: path,
    rankMax,
    targets: MODULE_KINDS.filter((k) => kinds.has(k)),
    modules,
    config,
    sizeBytes,
    warnings: layout.warnings,
  };
}

async function readConfig(dir: string): Promise<string> {
  const file = join(dir, PEFT_CONFIG_FILE);
  const s = await stat(file).catch(() => null);
  if (!s?.isFile()) {
    throw createError('ADAPTER_FILE_MISSING', {
      dir,
      file: PEFT_CONFIG_FILE,
      hint: "a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors, as PEFT's save_pretrained writes them",
    });
  }
  if (s.size > MAX_CONFIG_BYTES) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      problem: `is ${s.size} bytes; an adapter config is at most ${MAX_CONFIG_BYTES}`,
    });
  }
  return readFile(file, 'utf8');
}

async function openWeights(path: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path);
  } catch (e) {
    throw weightsError(e, path);
  }
}

async function readFactor(file: SafetensorsFile, tensor: string): Promise<Float32Array> {
  try {
    return (await file.readF32(tensor)).data;
  } catch (e) {
    throw weightsError(e, file.path);
  }
}

/** Safetensors format errors and file-system errors (EISDIR, EACCES, …) both become ADAPTER_WEIGHTS_INVALID. */
function weightsError(e: unknown, path: string): unknown {
  const fsCode = (e as NodeJS.ErrnoException | null)?.code;
  if (!(e instanceof SafetensorsError) && typeof fsCode !== 'string') return e;
  const prefix = `${path}: `;
  const message = (e as Error).message;
  const problem = message.startsWith(prefix) ? message.slice(prefix.length) : `cannot be read (${message})`;
  return createError(
    'ADAPTER_WEIGHTS_INVALID',
    { file: path, problem, hint: 'the file is damaged or not safetensors; re-save the adapter' },
    { cause: e },
  );
}
