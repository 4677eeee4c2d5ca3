/**
 * A torch.save checkpoint (the zip format of torch ≥ 1.6): `<archive>/data.pkl` pickles the object, each
 * tensor's storage lives in `<archive>/data/<key>`, little-endian. Read with the restricted unpickler: the
 * result is a flat `{name: tensor}` state dict, and a tensor's values are read (and converted to f32) only when
 * asked for.
 *
 *   const ckpt = await readTorchCheckpoint(source);
 *   const a = await ckpt.readF32('model.decoder.layers.0.…linear_in.weight');
 */
import { bf16ToF32, f16ToF32 } from '../../../kernels/dtype.ts';
import { type ByteSource, FormatError } from './byte-source.ts';
import {
  isTensor,
  PickleDict,
  PickleError,
  PickleTuple,
  type PickleValue,
  StorageClass,
  type StorageDtype,
  type StorageRef,
  type TensorRef,
} from './pickle-values.ts';
import { unpickle } from './unpickler.ts';
import { listZip, readZipEntry, type ZipEntry } from './zip.ts';

/** Most bytes data.pkl may have: a state dict's pickle is names and shapes, a few MB for the largest models. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

const ITEM_BYTES: Record<StorageDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export interface TorchCheckpoint {
  /** Tensors by name; entries whose value is None (Megatron's `_extra_state`) are left out. */
  tensors: Map<string, TensorRef>;
  /** Names whose values are neither tensors nor None, with what they are. */
  others: Map<string, string>;
  readF32(name: string): Promise<Float32Array>;
}

export async function readTorchCheckpoint(src: ByteSource): Promise<TorchCheckpoint> {
  const entries = await listZip(src);
  const pickles = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    throw new FormatError(
      pickles.length === 0
        ? 'not a torch.save checkpoint (no <archive>/data.pkl in the zip)'
        : 'holds more than one <archive>/data.pkl',
    );
  }
  const prefix = pickles[0].slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && (await readZipEntry(src, byteorder)).toString('latin1').trim() !== 'little') {
    throw new FormatError('stores big-endian tensors; only little-endian checkpoints are read');
  }
  const pklEntry = entries.get(pickles[0]) as ZipEntry;
  if (pklEntry.size > MAX_PICKLE_BYTES) throw new FormatError(`data.pkl is ${pklEntry.size} bytes`);

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PickleValue): StorageRef => {
    const items = pid instanceof PickleTuple ? pid.items : [];
    const [tag, cls, key, , numel] = items;
    if (items.length !== 5 || tag !== 'storage' || !(cls instanceof StorageClass) || typeof key !== 'string') {
      throw new PickleError("a persistent id that is not a torch storage ('storage', type, key, location, numel)");
    }
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      throw new PickleError(`storage '${key.slice(0, 40)}' has an element count of ${String(numel)}`);
    }
    const entry = entries.get(`${prefix}data/${key}`);
    if (!entry) throw new PickleError(`storage '${key.slice(0, 40)}' has no data/${key.slice(0, 40)} in the archive`);
    if (entry.size !== numel * ITEM_BYTES[cls.dtype]) {
      throw new PickleError(
        `storage '${key}' holds ${entry.size} bytes, but ${numel} ${cls.dtype} elements take ${numel * ITEM_BYTES[cls.dtype]}`,
      );
    }
    const previous = storages.get(key);
    if (previous && (previous.dtype !== cls.dtype || previous.numel !== numel)) {
      throw new PickleError(`storage '${key}' is named twice with different types`);
    }
    const ref: StorageRef = previous ?? { kind: 'storage', dtype: cls.dtype, key, numel };
    storages.set(key, ref);
    return ref;
  };
  const root = unpickle(await readZipEntry(src, pklEntry), { persistentLoad });

  if (!(root instanceof PickleDict)) throw new FormatError('data.pkl holds something other than a dict of tensors');
  const tensors = new Map<string, TensorRef>();
  const others = new Map<string, string>();
  for (const [k, v] of root.entries) {
    if (typeof k !== 'string') throw new FormatError(`a state dict key that is not a string (${String(k)})`);
    if (v === null) continue;
    if (isTensor(v)) tensors.set(k, v);
    else others.set(k, kindOf(v));
  }

  return {
    tensors,
    others,
    async readF32(name) {
      const t = tensors.get(name);
      if (!t) throw new FormatError(`no tensor '${name}'`);
      const entry = entries.get(`${prefix}data/${t.storage.key}`) as ZipEntry;
      return gather(await readZipEntry(src, entry), t);
    },
  };
}

function kindOf(v: PickleValue): string {
  if (Array.isArray(v)) return 'a list';
  if (v instanceof PickleDict) return 'a dict';
  if (v instanceof PickleTuple) return 'a tuple';
  return typeof v;
}

/** The view's elements in row-major order, as f32. */
function gather(bytes: Buffer, t: TensorRef): Float32Array {
  const decode = decoderOf(t.storage.dtype, bytes);
  const n = t.size.reduce((a, b) => a * b, 1);
  if (t.storage.dtype === 'float32' && isContiguous(t)) {
    // What torch.save writes for a saved parameter: one copy (the file is little-endian, as every host we run on).
    const out = new Float32Array(n);
    bytes.copy(new Uint8Array(out.buffer), 0, t.offset * 4, (t.offset + n) * 4);
    return out;
  }
  const out = new Float32Array(n);
  const dims = t.size.length;
  const index = new Array<number>(dims).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = decode(src);
    // odometer over the dims, last fastest
    for (let d = dims - 1; d >= 0; d--) {
      index[d]++;
      src += t.stride[d];
      if (index[d] < t.size[d]) break;
      src -= t.stride[d] * t.size[d];
      index[d] = 0;
    }
  }
  return out;
}

function isContiguous(t: TensorRef): boolean {
  let expected = 1;
  for (let d = t.size.length - 1; d >= 0; d--) {
    if (t.size[d] !== 1 && t.stride[d] !== expected) return false;
    expected *= t.size[d];
  }
  return true;
}

function decoderOf(dtype: StorageDtype, bytes: Buffer): (i: number) => number {
  switch (dtype) {
    case 'float32':
      return (i) => bytes.readFloatLE(i * 4);
    case 'float64':
      return (i) => bytes.readDoubleLE(i * 8);
    case 'float16':
      return (i) => f16ToF32(bytes.readUInt16LE(i * 2));
    case 'bfloat16':
      return (i) => bf16ToF32(bytes.readUInt16LE(i * 2));
    default:
      throw new FormatError(`holds ${dtype} values; LoRA factors are floating point`);
  }
}
