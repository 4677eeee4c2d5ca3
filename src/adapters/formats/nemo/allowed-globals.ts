/**
 * The globals a torch.save pickle may name, and what each builds: the tensor rebuild functions (a view into a
 * storage, bounds-checked), the storage classes (markers inside persistent ids, never called), and the
 * containers pickle spells through globals (OrderedDict, set, protocol 2's bytes). Everything else is absent
 * from this list, which is the whole of the unpickler's policy.
 */
import {
  AllowedGlobal,
  describe,
  isDictKey,
  isStorage,
  isTensor,
  PickleDict,
  PickleError,
  PickleSet,
  PickleTuple,
  type PickleValue,
  StorageClass,
  type StorageDtype,
  type TensorRef,
} from './pickle-values.ts';

const STORAGE_CLASSES: Record<string, StorageDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** The value a named global stands for, or null when the pickle may not name it. */
export function allowedGlobal(module: string, name: string): StorageClass | AllowedGlobal | null {
  if (module === 'torch' && Object.hasOwn(STORAGE_CLASSES, name)) return new StorageClass(STORAGE_CLASSES[name]);
  const qualified = `${module}.${name}`;
  const call = CALLABLES.get(qualified);
  return call ? new AllowedGlobal(qualified, call) : null;
}

function int(v: PickleValue, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new PickleError(`${what} is ${describe(v)}, not a non-negative integer`);
  }
  return v;
}

function ints(v: PickleValue, what: string): number[] {
  if (!(v instanceof PickleTuple)) throw new PickleError(`${what} is ${describe(v)}, not a tuple`);
  return v.items.map((x, i) => int(x, `${what}[${i}]`));
}

/** torch._utils._rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...): a view into the storage. */
function rebuildTensor(args: readonly PickleValue[], minArgs: number): TensorRef {
  if (args.length < minArgs || args.length > 7) throw new PickleError(`called with ${args.length} arguments`);
  const [storage, offset, size, stride] = args;
  if (!isStorage(storage)) throw new PickleError(`the storage argument is ${describe(storage)}`);
  const shape = ints(size, 'size');
  const strides = ints(stride, 'stride');
  if (shape.length !== strides.length) throw new PickleError(`size has ${shape.length} dims, stride ${strides.length}`);
  const start = int(offset, 'storage_offset');
  // The last element the view reaches must lie inside the storage.
  let last = start;
  let empty = false;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 0) empty = true;
    else last += (shape[i] - 1) * strides[i];
  }
  if (!empty && last >= storage.numel) {
    throw new PickleError(
      `a view of size [${shape.join(', ')}] at offset ${start} reaches element ${last} of a storage of ${storage.numel}`,
    );
  }
  return { kind: 'tensor', storage, offset: start, size: shape, stride: strides };
}

const CALLABLES = new Map<string, (args: readonly PickleValue[]) => PickleValue>([
  ['torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args, 6)],
  ['torch._utils._rebuild_tensor', (args) => rebuildTensor(args, 4)],
  [
    // A Parameter pickles as its data tensor plus requires_grad and hooks: the tensor is what is kept.
    'torch._utils._rebuild_parameter',
    (args) => {
      if (!isTensor(args[0])) throw new PickleError(`the data argument is ${describe(args[0] ?? null)}`);
      return args[0];
    },
  ],
  [
    'collections.OrderedDict',
    (args) => {
      const d = new PickleDict();
      if (args.length > 1) throw new PickleError(`called with ${args.length} arguments`);
      if (args.length === 1) {
        const pairs = args[0];
        if (!Array.isArray(pairs)) throw new PickleError(`called with ${describe(pairs)}, not a list of pairs`);
        for (const p of pairs) {
          if (!(p instanceof PickleTuple) || p.items.length !== 2) throw new PickleError('an item that is not a pair');
          const [k, v] = p.items;
          if (!isDictKey(k)) throw new PickleError(`a key that is ${describe(k)}`);
          d.entries.set(k, v);
        }
      }
      return d;
    },
  ],
  [
    // Protocol 2 has no bytes opcode: Python 3 pickles bytes b as _codecs.encode(b.decode('latin1'), 'latin1').
    '_codecs.encode',
    (args) => {
      const [text, encoding] = args;
      const latin1 = typeof text === 'string' && [...text].every((c) => c.charCodeAt(0) < 256);
      if (args.length !== 2 || !latin1 || (encoding !== 'latin1' && encoding !== 'latin-1')) {
        throw new PickleError("only _codecs.encode(text, 'latin1') is read (protocol 2's spelling of bytes)");
      }
      return Uint8Array.from(Buffer.from(text as string, 'latin1'));
    },
  ],
  // Protocol 2 spells builtins by their Python 2 module name (pickle's compat mapping).
  ['builtins.set', (args) => new PickleSet(containerItems(args))],
  ['builtins.frozenset', (args) => new PickleSet(containerItems(args))],
  ['__builtin__.set', (args) => new PickleSet(containerItems(args))],
  ['__builtin__.frozenset', (args) => new PickleSet(containerItems(args))],
]);

/** set() or set(list | tuple): protocol 2 pickles sets this way. */
function containerItems(args: readonly PickleValue[]): PickleValue[] {
  if (args.length === 0) return [];
  const [items] = args;
  if (args.length === 1 && Array.isArray(items)) return [...items];
  if (args.length === 1 && items instanceof PickleTuple) return [...items.items];
  throw new PickleError('called with something other than a list');
}
