/**
 * Loads a llama.cpp GGUF model file: the config from its metadata (model-config.ts), its tensors under
 * Hugging Face names (tensor-source.ts), every matrix dequantized and stored as bf16, or as options.dtype.
 * Quantized blocks are dequantized at load; serving from the blocks themselves (int8 VNNI kernels) is the
 * next step (issue 11).
 *
 *   const { config, weights } = await loadGgufModel('/models/SmolLM2-135M-Instruct.Q8_0.gguf');
 */
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ModelConfig } from '../config.ts';
import type { TokenizerFiles } from '../tokenizer-files.ts';
import { type LoadedModel, type LoadWeightsOptions, loadWeights, type TensorSource, WeightsError } from '../weights.ts';
import { GgufFile, GgufFormatError } from './gguf-file.ts';
import { GgufFields, ggufModelConfig } from './model-config.ts';
import { GgufTensorSource, ROPE_FREQS } from './tensor-source.ts';
import { ggufTokenizerFiles } from './tokenizer-json.ts';

export const GGUF_EXTENSION = '.gguf';

/**
 * The GGUF model file `path` names: the path itself when it is a *.gguf file, or the one *.gguf file of a
 * folder without config.json; null otherwise (a Hugging Face folder). Several .gguf files are refused.
 */
export async function ggufModelFile(path: string): Promise<string | null> {
  const s = await stat(path).catch(() => null);
  if (s === null) return null;
  if (s.isFile()) return path.endsWith(GGUF_EXTENSION) ? path : null;
  if (!s.isDirectory()) return null;
  const names = await readdir(path);
  if (names.includes('config.json')) return null;
  const ggufs = names.filter((n) => n.endsWith(GGUF_EXTENSION)).sort();
  if (ggufs.length > 1) {
    throw new WeightsError(
      'weights_format_unsupported',
      `${path}: holds ${ggufs.length} .gguf files (${ggufs.slice(0, 3).join(', ')}${ggufs.length > 3 ? ', …' : ''}); pass --model the one to serve`,
    );
  }
  return ggufs.length === 1 ? join(path, ggufs[0]) : null;
}

/** The file's config and its tensors; reads go through `fh`, which the caller closes. */
async function openGguf(path: string, fh: FileHandle): Promise<{ config: ModelConfig; source: GgufTensorSource }> {
  const label = basename(path);
  const { size } = await fh.stat();
  const file = await GgufFile.fromHandle(fh, size).catch((e) => {
    if (e instanceof GgufFormatError) throw new WeightsError('weights_format_unsupported', `${label}: ${e.message}`);
    throw e;
  });
  const fields = new GgufFields(file.metadata, label);
  const embedding = file.tensors.get('token_embd.weight');
  if (embedding === undefined) {
    throw new WeightsError('weights_missing_tensor', `${label}: no token_embd.weight; is this a GGUF model file?`);
  }
  const ropeFreqs = file.tensors.get(ROPE_FREQS);
  const config = ggufModelConfig(fields, {
    tensors: new Set(file.tensors.keys()),
    embeddingRows: embedding.ne[1] ?? 0,
    ...(ropeFreqs ? { ropeFreqs: await file.readF32(ropeFreqs) } : {}),
  });
  return { config, source: new GgufTensorSource(label, file, config, fields.string('general.architecture') ?? '') };
}

export async function loadGgufModel(path: string, options: LoadWeightsOptions = {}): Promise<LoadedModel> {
  const fh = await open(path, 'r');
  try {
    const { config, source } = await openGguf(path, fh);
    const { weights, dtype } = await loadWeights(config, source, `${basename(path)}'s metadata`, {
      ...options,
      dtype: options.dtype ?? 'bf16',
    });
    return { dir: path, config: { ...config, dtype }, weights };
  } finally {
    await fh.close();
  }
}

/** The config a GGUF model file's metadata gives (headers only; --max-model-len is checked against it). */
export async function readGgufModelConfig(path: string): Promise<ModelConfig> {
  const fh = await open(path, 'r');
  try {
    return (await openGguf(path, fh)).config;
  } finally {
    await fh.close();
  }
}

/**
 * The file's tensors for reads after the load (DoRA's base projections on the loader thread); the file
 * stays open for the life of the process, as that thread's source does.
 */
export async function openGgufTensors(path: string): Promise<TensorSource> {
  const fh = await open(path, 'r');
  try {
    return (await openGguf(path, fh)).source;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The tokenizer files (tokenizer.json, tokenizer_config.json as objects) a GGUF model file's metadata makes. */
export async function readGgufTokenizerFiles(path: string): Promise<TokenizerFiles> {
  const label = basename(path);
  const fh = await open(path, 'r');
  try {
    const file = await GgufFile.fromHandle(fh, (await fh.stat()).size).catch((e) => {
      if (e instanceof GgufFormatError) throw new WeightsError('weights_format_unsupported', `${label}: ${e.message}`);
      throw e;
    });
    return ggufTokenizerFiles(new GgufFields(file.metadata, label));
  } finally {
    await fh.close();
  }
}
