/**
 * A restricted pickle reader for torch.save checkpoints (pickle protocols 2–5). It is a small stack machine
 * that builds plain values — None, bools, ints, floats, strings, bytes, lists, tuples, dicts, sets — and
 * rebuilds tensors from a fixed list of torch globals (allowed-globals.ts). Every other global (os.system,
 * builtins.eval, any class) is refused the moment the pickle names it: nothing is imported, called or run, ever.
 *
 *   const root = unpickle(bytes, { persistentLoad: (pid) => storageOf(pid) });
 *
 * torch.save pickles `{name: tensor}` as REDUCE(torch._utils._rebuild_tensor_v2, (storage, offset, size,
 * stride, requires_grad, hooks)), the storage being a persistent id ('storage', torch.FloatStorage, key,
 * location, numel) that names the archive entry `data/<key>` holding its bytes (torch/serialization.py).
 * Bounds: every length is checked against the bytes left before anything is allocated, so a truncated or
 * hostile pickle fails with a PickleError naming the opcode and its offset.
 */
import { allowedGlobal } from './allowed-globals.ts';
import {
  AllowedGlobal,
  describe,
  isDictKey,
  PickleDict,
  PickleError,
  PickleSet,
  PickleTuple,
  type PickleValue,
  type StorageRef,
} from './pickle-values.ts';

export interface UnpickleOptions {
  /** Resolves a persistent id (torch: a storage tuple); throw a PickleError to refuse it. */
  persistentLoad: (pid: PickleValue) => StorageRef;
}

const MARK = Symbol('mark');
const NOTHING = Symbol('nothing pushed');
type StackItem = PickleValue | typeof MARK;

/** Longest text a GLOBAL line, and most bytes a LONG1/LONG4 integer, may have. */
const MAX_GLOBAL_LINE = 256;
const MAX_LONG_BYTES = 64;

export function unpickle(data: Uint8Array, opts: UnpickleOptions): PickleValue {
  return new Machine(data, opts).run();
}

class Machine {
  private pos = 0;
  private stack: StackItem[] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly view: DataView;
  private opStart = 0;

  constructor(
    private readonly data: Uint8Array,
    private readonly opts: UnpickleOptions,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  run(): PickleValue {
    if (this.data.length < 2 || this.data[0] !== 0x80) {
      throw new PickleError('not a binary pickle (protocol 2 or later starts with the PROTO opcode)');
    }
    for (;;) {
      this.opStart = this.pos;
      const op = this.u8();
      if (op === 0x2e) return this.finish(); // STOP
      const pushed = this.step(op);
      if (pushed !== NOTHING) this.stack.push(pushed);
    }
  }

  private finish(): PickleValue {
    if (this.stack.length !== 1) this.fail(`STOP with ${this.stack.length} items on the stack, not 1`);
    return this.value(this.stack[0], 'the result');
  }

  /** Runs one opcode; returns what it pushes, or NOTHING. */
  private step(op: number): PickleValue | typeof NOTHING {
    switch (op) {
      case 0x80: {
        const proto = this.u8();
        if (proto < 2 || proto > 5) this.fail(`pickle protocol ${proto}; only protocols 2 to 5 are read`);
        return NOTHING;
      }
      case 0x95: // FRAME: a length hint; the framed opcodes follow inline
        this.take(8);
        return NOTHING;
      case 0x4e: // NONE
        return null;
      case 0x88: // NEWTRUE
        return true;
      case 0x89: // NEWFALSE
        return false;
      case 0x4b: // BININT1
        return this.u8();
      case 0x4d: // BININT2
        return this.u16();
      case 0x4a: // BININT
        return this.i32();
      case 0x8a: // LONG1
        return this.long(this.u8());
      case 0x8b: // LONG4
        return this.long(this.u32());
      case 0x47: {
        // BINFLOAT: big-endian float64
        const at = this.take(8);
        return this.view.getFloat64(at, false);
      }
      case 0x58: // BINUNICODE
        return this.text(this.u32());
      case 0x8c: // SHORT_BINUNICODE
        return this.text(this.u8());
      case 0x8d: // BINUNICODE8
        return this.text(this.u64());
      case 0x54: // BINSTRING (Python 2 str): bytes read as latin-1 text, as pickle's default encoding does
        return this.latin1(this.u32());
      case 0x55: // SHORT_BINSTRING
        return this.latin1(this.u8());
      case 0x42: // BINBYTES
        return this.bytes(this.u32());
      case 0x43: // SHORT_BINBYTES
        return this.bytes(this.u8());
      case 0x8e: // BINBYTES8
        return this.bytes(this.u64());
      case 0x96: // BYTEARRAY8
        return this.bytes(this.u64());
      case 0x7d: // EMPTY_DICT
        return new PickleDict();
      case 0x5d: // EMPTY_LIST
        return [];
      case 0x29: // EMPTY_TUPLE
        return new PickleTuple([]);
      case 0x8f: // EMPTY_SET
        return new PickleSet([]);
      case 0x28: // MARK
        this.stack.push(MARK);
        return NOTHING;
      case 0x31: // POP_MARK
        this.popMark();
        return NOTHING;
      case 0x30: // POP
        this.pop();
        return NOTHING;
      case 0x32: // DUP
        return this.top();
      case 0x85: // TUPLE1
        return new PickleTuple([this.pop()]);
      case 0x86: {
        // TUPLE2
        const b = this.pop();
        return new PickleTuple([this.pop(), b]);
      }
      case 0x87: {
        // TUPLE3
        const c = this.pop();
        const b = this.pop();
        return new PickleTuple([this.pop(), b, c]);
      }
      case 0x74: // TUPLE
        return new PickleTuple(this.popMark());
      case 0x6c: // LIST
        return this.popMark();
      case 0x64: {
        // DICT
        const d = new PickleDict();
        this.setItems(d, this.popMark());
        return d;
      }
      case 0x91: // FROZENSET
        return new PickleSet(this.popMark());
      case 0x61: {
        // APPEND
        const v = this.pop();
        this.list(this.top()).push(v);
        return NOTHING;
      }
      case 0x65: {
        // APPENDS
        const items = this.popMark();
        const target = this.top();
        if (target instanceof PickleSet) this.fail('APPENDS on a set');
        this.list(target).push(...items);
        return NOTHING;
      }
      case 0x90: {
        // ADDITEMS
        const items = this.popMark();
        const target = this.top();
        if (!(target instanceof PickleSet)) this.fail('ADDITEMS on something that is not a set');
        target.items.push(...items);
        return NOTHING;
      }
      case 0x73: {
        // SETITEM
        const v = this.pop();
        const k = this.pop();
        this.setItems(this.dict(this.top()), [k, v]);
        return NOTHING;
      }
      case 0x75: {
        // SETITEMS
        const items = this.popMark();
        this.setItems(this.dict(this.top()), items);
        return NOTHING;
      }
      case 0x71: // BINPUT
        return this.put(this.u8());
      case 0x72: // LONG_BINPUT
        return this.put(this.u32());
      case 0x94: // MEMOIZE
        return this.put(this.memo.size);
      case 0x68: // BINGET
        return this.get(this.u8());
      case 0x6a: // LONG_BINGET
        return this.get(this.u32());
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = this.line();
        return this.global(module, this.line());
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
        return this.global(module, name);
      }
      case 0x52: {
        // REDUCE: callable(*args)
        const args = this.pop();
        const callable = this.pop();
        if (!(callable instanceof AllowedGlobal)) this.fail(`REDUCE on ${describe(callable)}, which is not callable`);
        if (!(args instanceof PickleTuple)) this.fail(`REDUCE of ${callable.name} with ${describe(args)} as arguments`);
        return callable.call(args.items);
      }
      case 0x62: {
        // BUILD: only a dict's attributes (an OrderedDict's __dict__, e.g. a state dict's _metadata) are kept
        const state = this.pop();
        const target = this.top();
        if (!(target instanceof PickleDict)) this.fail(`BUILD on ${describe(target)}`);
        target.attributes = state;
        return NOTHING;
      }
      case 0x51: // BINPERSID
        return this.opts.persistentLoad(this.pop());
      case 0x81: // NEWOBJ: cls.__new__(cls, *args); no allowed global is a class that can be instantiated
      case 0x92: // NEWOBJ_EX
        this.fail('NEWOBJ: the pickle creates an object of a class; only tensors and containers are read');
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        this.fail('an extension-registry global (EXT1/2/4); only tensors and containers are read');
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        this.fail('an out-of-band buffer (protocol 5 PickleBuffer); torch.save does not write them');
        break;
      default:
        this.fail(`opcode 0x${op.toString(16).padStart(2, '0')}${textOpcode(op)} is not read by this reader`);
    }
  }

  /** A global the pickle names: a torch rebuild function, a storage class, or a container; anything else fails here. */
  private global(module: string, name: string): PickleValue {
    const found = allowedGlobal(module, name);
    if (!found) {
      throw new PickleError(
        `the pickle names the global '${`${module}.${name}`.slice(0, 200)}' (at byte ${this.opStart}); only torch ` +
          'tensors, storages and plain containers are read, and nothing in the file was run',
      );
    }
    if (!(found instanceof AllowedGlobal)) return found;
    // Errors of the call name the global and where the pickle called it.
    return new AllowedGlobal(found.name, (args) => {
      try {
        return found.call(args);
      } catch (e) {
        if (e instanceof PickleError) this.fail(`${found.name}: ${e.message}`);
        throw e;
      }
    });
  }

  private setItems(d: PickleDict, items: PickleValue[]): void {
    if (items.length % 2 !== 0) this.fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) {
      const k = items[i];
      if (!isDictKey(k)) this.fail(`a dict key that is ${describe(k)}; keys are strings or numbers`);
      d.entries.set(k, items[i + 1]);
    }
  }

  private put(index: number): typeof NOTHING {
    this.memo.set(index, this.top());
    return NOTHING;
  }

  private get(index: number): PickleValue {
    if (!this.memo.has(index)) this.fail(`memo entry ${index} was never stored`);
    return this.memo.get(index) as PickleValue;
  }

  private pop(): PickleValue {
    if (this.stack.length === 0) this.fail('pops an empty stack');
    return this.value(this.stack.pop() as StackItem, 'a stack item');
  }

  private top(): PickleValue {
    if (this.stack.length === 0) this.fail('reads an empty stack');
    return this.value(this.stack[this.stack.length - 1], 'the top of the stack');
  }

  private popMark(): PickleValue[] {
    const at = this.stack.lastIndexOf(MARK);
    if (at < 0) this.fail('needs a MARK and there is none');
    const items = this.stack.splice(at) as PickleValue[];
    items.shift();
    return items;
  }

  private value(item: StackItem, what: string): PickleValue {
    if (item === MARK) this.fail(`${what} is a MARK`);
    return item as PickleValue;
  }

  private list(v: PickleValue): PickleValue[] {
    if (!Array.isArray(v)) this.fail(`APPEND to ${describe(v)}`);
    return v;
  }

  private dict(v: PickleValue): PickleDict {
    if (!(v instanceof PickleDict)) this.fail(`SETITEM on ${describe(v)}`);
    return v;
  }

  // --- reading bytes -----------------------------------------------------------------------------------

  private take(n: number): number {
    if (n > this.data.length - this.pos) {
      this.fail(`needs ${n} more bytes, but the pickle ends after ${this.data.length - this.pos} (truncated)`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private u8(): number {
    return this.data[this.take(1)];
  }

  private u16(): number {
    return this.view.getUint16(this.take(2), true);
  }

  private u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  private i32(): number {
    return this.view.getInt32(this.take(4), true);
  }

  private u64(): number {
    const v = this.view.getBigUint64(this.take(8), true);
    // Longer than the pickle itself: fail here, before Number() could round it into range.
    if (v > BigInt(this.data.length)) this.fail(`a length of ${v} bytes, past the end of the pickle (truncated)`);
    return Number(v);
  }

  private bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.data.slice(at, at + n);
  }

  private text(n: number): string {
    const at = this.take(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.data.subarray(at, at + n));
    } catch {
      this.fail('a string that is not valid UTF-8');
    }
  }

  private latin1(n: number): string {
    const at = this.take(n);
    return Buffer.from(this.data.buffer, this.data.byteOffset + at, n).toString('latin1');
  }

  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > MAX_GLOBAL_LINE) this.fail('a GLOBAL name without its newline (truncated)');
    const s = Buffer.from(this.data.buffer, this.data.byteOffset + this.pos, end - this.pos).toString('latin1');
    this.pos = end + 1;
    return s;
  }

  /** Two's-complement little-endian integer; a number when it is exact, else a bigint. */
  private long(n: number): number | bigint {
    if (n > MAX_LONG_BYTES) this.fail(`an integer of ${n} bytes; at most ${MAX_LONG_BYTES} are read`);
    const at = this.take(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.data[at + i]);
    if (this.data[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private fail(problem: string): never {
    throw new PickleError(`${problem} (at byte ${this.opStart})`);
  }
}

function textOpcode(op: number): string {
  const c = String.fromCharCode(op);
  return /[A-Za-z(]/.test(c) ? ` ('${c}', a protocol 0/1 opcode)` : '';
}
