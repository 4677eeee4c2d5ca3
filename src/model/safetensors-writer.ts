/**
 * Writes a model's tensors as Hugging Face does: one model.safetensors, or, past the shard size, shards
 * model-00001-of-0000N.safetensors and model.safetensors.index.json ({metadata: {total_size}, weight_map}).
 * Tensors are streamed into each file (no whole-file buffer), and each file is written under a temporary
 * name and renamed, so a failed write leaves no file that looks complete.
 *
 *   await writeModelSafetensors(outDir, tensors, { maxShardBytes: 2e9 });
 */
import { type FileHandle, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TensorToWrite } from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** Hugging Face's default `max_shard_size` ("2GB": decimal gigabytes). */
export const DEFAULT_MAX_SHARD_BYTES = 2_000_000_000;
/** What transformers checks in a checkpoint's metadata before loading it. */
const METADATA = { format: 'pt' };

export interface WriteModelOptions {
  maxShardBytes?: number;
}

/** The file names written, in order (the index last when sharded). */
export async function writeModelSafetensors(
  dir: string,
  tensors: TensorToWrite[],
  options: WriteModelOptions = {},
): Promise<string[]> {
  const shards = planShards(tensors, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  if (shards.length === 1) {
    await writeSafetensorsFile(join(dir, SINGLE_FILE), shards[0]);
    return [SINGLE_FILE];
  }
  const names = shards.map((_, i) => shardName(i + 1, shards.length));
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [i, shard] of shards.entries()) {
    await writeSafetensorsFile(join(dir, names[i]), shard);
    for (const t of shard) {
      weightMap[t.name] = names[i];
      totalSize += t.data.byteLength;
    }
  }
  const sortedMap = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
  await writeAtomically(join(dir, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
  return [...names, INDEX_FILE];
}

/** model-00002-of-00003.safetensors */
export function shardName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index)}-of-${pad(count)}.safetensors`;
}

/**
 * Tensors in order, cut into shards of at most maxShardBytes of tensor data; a tensor larger than that gets
 * a shard of its own (as transformers does).
 */
export function planShards(tensors: TensorToWrite[], maxShardBytes: number): TensorToWrite[][] {
  if (!(maxShardBytes > 0)) throw new RangeError(`the shard size must be positive, got ${maxShardBytes}`);
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let bytes = 0;
  for (const t of tensors) {
    if (current.length > 0 && bytes + t.data.byteLength > maxShardBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += t.data.byteLength;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

/** The 8-byte length and the JSON header (space-padded so the data starts 8-byte aligned). */
function headerBytes(tensors: TensorToWrite[]): Buffer {
  const header: Record<string, unknown> = { __metadata__: METADATA };
  let offset = 0;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const elementBytes = t.dtype === 'F32' || t.dtype === 'I32' ? 4 : t.dtype === 'I64' ? 8 : 2;
    if (numel * elementBytes !== t.data.byteLength) {
      throw new RangeError(
        `tensor '${t.name}': ${t.data.byteLength} bytes do not hold shape [${t.shape.join(', ')}] of ${t.dtype}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

async function writeSafetensorsFile(path: string, tensors: TensorToWrite[]): Promise<void> {
  const partial = `${path}.partial`;
  const fh = await open(partial, 'w');
  try {
    let position = 0;
    for (const bytes of [headerBytes(tensors), ...tensors.map((t) => t.data)]) {
      position = await writeAll(fh, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), position);
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(partial, { force: true });
    throw e;
  }
  await fh.close();
  await rename(partial, path);
}

/** Writes every byte at `position` (a write may take fewer; large tensors go in 1 GiB pieces); the end. */
async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, 1 << 30), position + done);
    done += bytesWritten;
  }
  return position + done;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const partial = `${path}.partial`;
  await writeFile(partial, text);
  await rename(partial, path);
}
