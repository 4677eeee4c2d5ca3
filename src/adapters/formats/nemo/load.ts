/**
 * Loads a NeMo LoRA adapter: a directory holding one `.nemo` file, the tar archive NeMo saves (model_config.yaml
 * + model_weights.ckpt, a torch.save zip read with the restricted unpickler). Produces the same LoraAdapter the
 * PEFT loader does; nothing but the archive's directory, headers and the pickle is read before config, names,
 * ranks and shapes all agree.
 *
 *   const adapter = await loadNemoAdapter('/adapters/support', baseConfig, { maxLoraRank: 64 });
 */

import { constants as bufferConstants } from 'node:buffer';
import { basename, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { ModelConfig } from '../../../model/config.ts';
import { type ModuleKind, moduleIndex, moduleKinds, moduleShape } from '../../../model/modules.ts';
import { createError, isLoraplexError } from '../../../observability/errors.ts';
import { adapterFileLabel, openAdapterDir, openAdapterFile } from '../../adapter-files.ts';
import { sameFactor, tiedSources } from '../../kinds/tied-lora.ts';
import { checkFactorValues } from '../../peft/weight-values.ts';
import type { LoraAdapter, LoraModuleWeights } from '../../types.ts';
import { nemoFilesIn } from './adapter-dir.ts';
import { type ByteSource, bufferSource, FormatError, fileSource, subSource } from './byte-source.ts';
import { type NemoPlannedModule, planNemoModules } from './layout.ts';
import { type NemoLoraConfig, parseNemoModelConfig } from './model-config.ts';
import { PickleError } from './pickle-values.ts';
import { listTar, type TarMember } from './tar.ts';
import { parseNemoTensorName } from './tensor-names.ts';
import { readTorchCheckpoint } from './torch-checkpoint.ts';

const CONFIG_MEMBER = 'model_config.yaml';
const WEIGHTS_MEMBER = 'model_weights.ckpt';
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const FLOAT_DTYPES = new Set(['float32', 'float16', 'bfloat16']);
const HINT = 'a NeMo LoRA .nemo is the tar archive NeMo saves: model_config.yaml and model_weights.ckpt';

export interface LoadNemoOptions {
  maxLoraRank: number;
  name?: string;
  root?: string;
}

/** The `.nemo` file of an adapter directory: null when there is none, an error when there are several. */
async function findNemoFile(dir: string, name: string): Promise<string | null> {
  const files = await nemoFilesIn(dir);
  if (files.length > 1) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file: adapterFileLabel(name, '.'),
      problem: `holds ${files.length} .nemo files (${files.slice(0, 3).join(', ')}); an adapter folder holds one`,
      hint: 'put each .nemo adapter in its own folder',
    });
  }
  return files[0] ?? null;
}

export async function loadNemoAdapter(
  dir: string,
  base: ModelConfig,
  opts: LoadNemoOptions,
): Promise<LoraAdapter<NemoLoraConfig>> {
  const name = opts.name ?? basename(resolve(dir));
  const d = await openAdapterDir(name, dir, opts.root);
  const nemoName = await findNemoFile(d.dir, name);
  if (!nemoName) throw createError('ADAPTER_FILE_MISSING', { dir: `'${name}'`, file: 'a .nemo file', hint: HINT });
  const label = adapterFileLabel(name, nemoName);
  const opened = await openAdapterFile(d, nemoName, 'ADAPTER_WEIGHTS_INVALID');
  if (!opened) throw createError('ADAPTER_FILE_MISSING', { dir: `'${name}'`, file: nemoName, hint: HINT });
  try {
    let src: ByteSource = fileSource(opened.fh, opened.stats.size);
    const archive = await contained(label, async () => {
      if (src.size >= 2) {
        const magic = await src.read(0, 2);
        if (magic[0] === 0x1f && magic[1] === 0x8b) src = await gunzipped(src); // .nemo before NeMo 1.7
      }
      return listTar(src);
    });
    const member = (file: string) => archive.find((m) => m.name === file);
    const configMember = member(CONFIG_MEMBER);
    const weightsMember = member(WEIGHTS_MEMBER);
    if (!configMember || !weightsMember)
      missingMember(name, nemoName, archive, configMember ? WEIGHTS_MEMBER : CONFIG_MEMBER);
    const configLabel = `${label}: ${CONFIG_MEMBER}`;
    const weightsLabel = `${label}: ${WEIGHTS_MEMBER}`;
    for (const [m, l] of [
      [configMember, configLabel],
      [weightsMember, weightsLabel],
    ] as const) {
      if (m.type !== 'file') {
        throw createError('ADAPTER_WEIGHTS_INVALID', { file: l, problem: `is a ${m.type} in the archive, not a file` });
      }
    }
    if (configMember.size > MAX_CONFIG_BYTES) {
      throw createError('ADAPTER_INVALID_CONFIG', { file: configLabel, problem: `is ${configMember.size} bytes` });
    }
    const configText = await contained(configLabel, async () =>
      (await src.read(configMember.offset, configMember.size)).toString('utf8'),
    );
    const config = parseNemoModelConfig(configText, configLabel);
    if (config.tensorParallel !== 1 || config.pipelineParallel !== 1) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file: configLabel,
        field: config.tensorParallel !== 1 ? 'tensor_model_parallel_size' : 'pipeline_model_parallel_size',
        problem: `is ${config.tensorParallel !== 1 ? config.tensorParallel : config.pipelineParallel}; only single-rank LoRA checkpoints are read`,
        hint: "convert it to TP=PP=1 with NeMo's merge_lora_weights/convert_lora_parallelism.py",
      });
    }

    const ckpt = await contained(weightsLabel, () =>
      readTorchCheckpoint(subSource(src, weightsMember.offset, weightsMember.size)),
    );
    for (const [key, what] of ckpt.others) {
      throw createError('ADAPTER_TENSOR_UNEXPECTED', {
        file: weightsLabel,
        field: `'${key.slice(0, 200)}'`,
        problem: `is ${what}, not a tensor; a LoRA state dict maps names to tensors`,
      });
    }
    const shapes = new Map<string, readonly number[]>();
    for (const [tensor, t] of ckpt.tensors) {
      if (!FLOAT_DTYPES.has(t.storage.dtype)) {
        throw createError('ADAPTER_WEIGHTS_INVALID', {
          file: weightsLabel,
          field: `tensor '${tensor}'`,
          problem: `has dtype ${t.storage.dtype}; LoRA factors must be float32, float16 or bfloat16`,
        });
      }
      shapes.set(tensor, t.size);
    }
    const plan = planNemoModules(config, shapes, base, weightsLabel, opts.maxLoraRank);

    const read = new Map<string, Float32Array>();
    const load = async (tensor: string) => {
      let data = read.get(tensor);
      if (!data) {
        data = await contained(weightsLabel, () => ckpt.readF32(tensor));
        checkFactorValues(data, weightsLabel, tensor);
        read.set(tensor, data);
      }
      return data;
    };
    // Tied-LoRA: every layer's copy must equal the first layer's, whose values build every layer's factors.
    const owners = config.weightTying ? tiedOwners(shapes.keys(), weightsLabel) : null;
    const factor = async (tensor: string) => {
      const owner = owners?.get(tensor);
      if (!owner || owner === tensor) return load(tensor);
      const [shared, copy] = [await load(owner), await load(tensor)];
      read.delete(tensor);
      if (!sameFactor(shared, copy)) {
        throw createError('ADAPTER_WEIGHTS_INVALID', {
          file: weightsLabel,
          field: `tensor '${tensor.slice(0, 200)}'`,
          problem: `differs from '${owner.slice(0, 200)}'; with weight_tying: true (Tied-LoRA) every layer holds the same factors`,
          hint: 'the weights are per layer: set weight_tying: false in model_config.yaml if they are meant to be',
        });
      }
      return shared;
    };
    const baseKinds = moduleKinds(base);
    const modules = new Map<number, LoraModuleWeights>();
    const kinds = new Set<ModuleKind>();
    let sizeBytes = 0;
    let rankMax = 0;
    // Tied-LoRA: modules assembled from the same first-layer tensors share one A and B (stored once per slot).
    const tied = new Map<string, LoraModuleWeights>();
    for (const m of plan) {
      const key = owners ? tiedKey(m, owners) : null;
      const earlier = key ? tied.get(key) : undefined;
      if (earlier) await checkTiedCopies(m, factor);
      const weights = earlier ? { ...earlier, layer: m.layer } : await assemble(m, base, config.adapterDim, factor);
      if (key && !earlier) tied.set(key, weights);
      modules.set(moduleIndex(m.layer, m.kind, baseKinds), weights);
      kinds.add(m.kind);
      if (!earlier) sizeBytes += (weights.a.length + weights.b.length) * 4;
      rankMax = Math.max(rankMax, m.rank);
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

/** Tied-LoRA: each tensor's counterpart in the first layer that holds it. */
function tiedOwners(tensors: Iterable<string>, file: string): Map<string, string> {
  return tiedSources(
    tensors,
    (tensor) => parseNemoTensorName(tensor, file).layer,
    (tensor, layer) => tensor.replace(/(^|\.)decoder\.layers\.\d+\./, `$1decoder.layers.${layer}.`),
  );
}

/** The first-layer tensors a Tied-LoRA module is assembled from, with its kind and scale. */
function tiedKey(m: NemoPlannedModule, owners: Map<string, string>): string {
  const pieces = m.pieces.map((p) => `${owners.get(p.linearIn)}|${owners.get(p.linearOut)}|${p.rows?.join(',') ?? ''}`);
  return JSON.stringify([m.kind, m.rank, m.scale, pieces]);
}

/** Reads a tied module's own copies, so each is still compared with the first layer's. */
async function checkTiedCopies(m: NemoPlannedModule, factor: (tensor: string) => Promise<Float32Array>) {
  for (const p of m.pieces) {
    await factor(p.linearIn);
    await factor(p.linearOut);
  }
}

/** A, B of one module from its pieces: A stacks the pieces' linear_in, B puts each piece's rows in its columns. */
async function assemble(
  m: NemoPlannedModule,
  base: ModelConfig,
  dim: number,
  factor: (tensor: string) => Promise<Float32Array>,
): Promise<LoraModuleWeights> {
  const { inFeatures, outFeatures } = moduleShape(base, m.kind);
  const a = new Float32Array(m.rank * inFeatures);
  const b = new Float32Array(outFeatures * m.rank);
  let row = 0;
  for (const [p, piece] of m.pieces.entries()) {
    a.set(await factor(piece.linearIn), p * dim * inFeatures);
    const out = await factor(piece.linearOut);
    const rows = piece.rows ?? Int32Array.from({ length: out.length / dim }, (_, i) => i);
    for (const source of rows) {
      for (let j = 0; j < dim; j++) b[row * m.rank + p * dim + j] = out[source * dim + j];
      row++;
    }
  }
  if (row !== outFeatures) throw new Error(`NeMo layout gave ${m.kind} ${row} rows, not ${outFeatures}`);
  return { kind: m.kind, layer: m.layer, rank: m.rank, scale: m.scale, a, b };
}

async function gunzipped(src: ByteSource): Promise<ByteSource> {
  const packed = await src.read(0, src.size);
  try {
    return bufferSource(await promisify(gunzip)(packed, { maxOutputLength: bufferConstants.MAX_LENGTH }));
  } catch {
    throw new FormatError('is gzip-compressed but does not decompress');
  }
}

function missingMember(name: string, nemoName: string, archive: TarMember[], file: string): never {
  const sharded = archive.some((m) => /^(mp_rank_|tp_rank_)/.test(m.name));
  if (sharded) {
    throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
      file: adapterFileLabel(name, nemoName),
      problem:
        'holds tensor-parallel shards (mp_rank_*/model_weights.ckpt); only single-rank LoRA checkpoints are read',
      hint: "convert it to TP=PP=1 with NeMo's merge_lora_weights/convert_lora_parallelism.py",
    });
  }
  throw createError('ADAPTER_FILE_MISSING', { dir: `'${name}' (${nemoName})`, file, hint: HINT });
}

/** Archive, zip and pickle errors become ADAPTER_WEIGHTS_INVALID naming the member; never a server path. */
async function contained<T>(label: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isLoraplexError(e)) throw e;
    const errno = (e as NodeJS.ErrnoException | null)?.code;
    if (e instanceof FormatError || e instanceof PickleError || typeof errno === 'string') {
      const problem =
        e instanceof FormatError || e instanceof PickleError ? e.message : `cannot be read (${errno ?? 'malformed'})`;
      throw createError(
        'ADAPTER_WEIGHTS_INVALID',
        { file: label, problem, hint: 'the file is damaged or not what NeMo saves; re-save the adapter with NeMo' },
        { cause: e },
      );
    }
    throw e;
  }
}
