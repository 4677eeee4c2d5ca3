/**
 * A Hugging Face model directory: config.json plus model.safetensors, or model.safetensors.index.json
 * and its shards. Pickle checkpoints (pytorch_model.bin) are refused: unpickling can run code.
 *
 *   const { config, weights } = await loadModelDir('/models/SmolLM2-135M', { dtype: 'bf16' });
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ModelConfig } from './config.ts';
import { ConfigError, parseModelConfig } from './config-parse.ts';
import { ggufModelFile, loadGgufModel, openGgufTensors } from './gguf/load.ts';
import { SafetensorsFile } from './safetensors.ts';
import { type LoadedModel, type LoadWeightsOptions, loadWeights, type TensorSource, WeightsError } from './weights.ts';

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';
const PICKLE = /\.(bin|pt|pth|ckpt|pkl)$/;

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError('config_invalid', `${path}: cannot read the model's config (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('config_invalid', `${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseModelConfig(json, path);
}

/** Tensors of one file or of every shard, looked up by name. */
class SafetensorsSet implements TensorSource {
  constructor(
    readonly path: string,
    private readonly files: Map<string, SafetensorsFile>,
  ) {}

  names(): string[] {
    return [...this.files.keys()];
  }
  fileOf(name: string): string | undefined {
    return this.files.get(name)?.path;
  }
  private file(name: string): SafetensorsFile {
    const f = this.files.get(name);
    if (!f) throw new WeightsError('weights_missing_tensor', `${this.path}: no tensor named '${name}'`);
    return f;
  }
  shapeOf(name: string): number[] {
    return this.file(name).info(name).shape;
  }
  dtypeOf(name: string): string {
    return this.file(name).info(name).dtype;
  }
  readRaw(name: string) {
    return this.file(name).readRaw(name);
  }
}

function addTensors(files: Map<string, SafetensorsFile>, file: SafetensorsFile) {
  for (const name of file.tensors.keys()) {
    const other = files.get(name);
    if (other) {
      throw new WeightsError('weights_index_invalid', `tensor '${name}' is in both ${other.path} and ${file.path}`);
    }
    files.set(name, file);
  }
}

async function openSharded(dir: string): Promise<TensorSource> {
  const indexPath = join(dir, INDEX_FILE);
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new WeightsError(
      'weights_index_invalid',
      `${indexPath}: cannot read the shard index (${(e as Error).message})`,
    );
  }
  const map = index?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new WeightsError('weights_index_invalid', `${indexPath}: 'weight_map' must map tensor names to shard files`);
  }
  const entries = Object.entries(map as Record<string, unknown>);
  const shardNames = new Set<string>();
  for (const [tensor, shard] of entries) {
    // A shard is a file beside the index, never a path elsewhere.
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || !shard.endsWith('.safetensors')) {
      throw new WeightsError(
        'weights_index_invalid',
        `${indexPath}: weight_map['${tensor}'] is ${JSON.stringify(shard)}; expected a .safetensors file name in the same folder`,
      );
    }
    shardNames.add(shard);
  }
  const shards = new Map<string, SafetensorsFile>();
  const files = new Map<string, SafetensorsFile>();
  for (const shard of [...shardNames].sort()) {
    const file = await SafetensorsFile.open(join(dir, shard));
    shards.set(shard, file);
    addTensors(files, file);
  }
  for (const [tensor, shard] of entries) {
    if (files.get(tensor) !== shards.get(shard as string)) {
      throw new WeightsError(
        'weights_index_invalid',
        `${indexPath}: weight_map puts '${tensor}' in ${shard}, which does not hold it`,
      );
    }
  }
  return new SafetensorsSet(indexPath, files);
}

/** Opens the model's safetensors (headers only) or GGUF file, refusing pickle checkpoints with how to convert them. */
export async function openModelTensors(dir: string): Promise<TensorSource> {
  const gguf = await ggufModelFile(dir);
  if (gguf !== null) return openGgufTensors(gguf);
  const present = new Set(await readdir(dir));
  if (present.has(INDEX_FILE)) return openSharded(dir);
  if (present.has(SINGLE_FILE)) {
    const file = await SafetensorsFile.open(join(dir, SINGLE_FILE));
    const files = new Map<string, SafetensorsFile>();
    addTensors(files, file);
    return new SafetensorsSet(file.path, files);
  }
  const pickles = [...present].filter((n) => PICKLE.test(n));
  if (pickles.length > 0) {
    throw new WeightsError(
      'weights_format_unsupported',
      `${join(dir, pickles[0])}: pickle checkpoints are refused (loading one can run arbitrary code); convert the ` +
        `model to safetensors, e.g. python -c "from transformers import AutoModelForCausalLM as M; ` +
        `M.from_pretrained('${dir}').save_pretrained('<out dir>')" (writes ${SINGLE_FILE})`,
    );
  }
  const found = [...present].filter((n) => n.endsWith('.safetensors'));
  throw new WeightsError(
    'weights_not_found',
    `${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}` +
      (found.length > 0 ? ` (found ${found.join(', ')}, but shards need their index)` : ''),
  );
}

/** A Hugging Face folder, or a GGUF model file (or a folder holding just one): see gguf/load.ts. */
export async function loadModelDir(dir: string, options: LoadWeightsOptions = {}): Promise<LoadedModel> {
  const gguf = await ggufModelFile(dir);
  if (gguf !== null) return loadGgufModel(gguf, options);
  const config = await readModelConfig(dir);
  const source = await openModelTensors(dir);
  const { weights, dtype } = await loadWeights(config, source, join(dir, 'config.json'), options);
  return { dir, config: { ...config, dtype }, weights };
}
