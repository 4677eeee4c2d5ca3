/**
 * What the restricted unpickler builds: plain Python values, torch storages and tensor views, and the allowed
 * callables. Nothing here runs code; a TensorRef only says where a tensor's values lie.
 */

export class PickleError extends Error {}

/** A torch storage dtype, named as torch.<Name>Storage names it. */
export type StorageDtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export class PickleTuple {
  constructor(readonly items: readonly PickleValue[]) {}
}

export class PickleSet {
  constructor(readonly items: PickleValue[]) {}
}

export type DictKey = string | number | bigint | boolean | null;

/** A dict (or OrderedDict); `attributes` holds what BUILD set on it (a state dict's `_metadata`). */
export class PickleDict {
  readonly entries = new Map<DictKey, PickleValue>();
  attributes: PickleValue = null;
}

/** A class a pickle may name but never call: torch.<X>Storage, used only inside persistent ids. */
export class StorageClass {
  constructor(readonly dtype: StorageDtype) {}
}

/** What persistentLoad returns for a storage id: where its bytes are, as the caller resolves them. */
export interface StorageRef {
  kind: 'storage';
  dtype: StorageDtype;
  key: string;
  numel: number;
}

/** A tensor as torch rebuilds it: a view (offset, size, stride) into a storage; no data is read here. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | PickleSet
  | PickleDict
  | StorageClass
  | StorageRef
  | TensorRef
  | AllowedGlobal;

/** A callable the pickle may REDUCE; it only builds values from its arguments. */
export class AllowedGlobal {
  constructor(
    readonly name: string,
    readonly call: (args: readonly PickleValue[]) => PickleValue,
  ) {}
}

/** How a value is named in error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleTuple) return 'a tuple';
  if (v instanceof PickleDict) return 'a dict';
  if (v instanceof PickleSet) return 'a set';
  if (v instanceof StorageClass) return `torch storage class (${v.dtype})`;
  if (v instanceof AllowedGlobal) return v.name;
  if (typeof v === 'object' && 'kind' in v) return `a ${(v as { kind: string }).kind}`;
  return typeof v === 'symbol' ? 'a MARK' : typeof v;
}

export function isStorage(v: PickleValue): v is StorageRef {
  return typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'storage';
}

export function isTensor(v: PickleValue): v is TensorRef {
  return typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'tensor';
}

/** Dict keys the reader keeps: what a state dict and its metadata use. */
export function isDictKey(k: PickleValue): k is DictKey {
  return k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k);
}
