/**
 * safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
 * The reader trusts nothing: the header size is capped, offsets must be in bounds, non-overlapping and
 * cover the data region exactly. Tensors are read by offset (files may exceed 2 GiB). Only regular files
 * are read: a FIFO, a socket or a device fails at once instead of blocking a read forever.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, writeFile } from 'node:fs/promises';
import { toF32Array } from '../kernels/dtype.ts';
import type { WeightDType } from '../kernels/types.ts';

export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: string; // as in the header: F32, F16, BF16, ...
  shape: number[];
  byteOffset: number; // absolute, in the file
  byteLength: number;
}

export interface RawTensor {
  dtype: WeightDType;
  shape: number[];
  data: Float32Array | Uint16Array;
}

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    /** Set by fromHandle(): tensors are read from this fd (never the path again); the caller closes it. */
    private readonly handle: FileHandle | null = null,
  ) {}

  /** Opens `path` for good measure with O_NONBLOCK and checks on that same fd that it is a regular file. */
  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return await SafetensorsFile.parse(fh, path, null);
    } finally {
      await fh.close();
    }
  }

  /**
   * Reads the header from an open handle, which the caller keeps open for readBytes() and closes. `label`
   * names the file in errors (e.g. "adapter 'sql': adapter_model.safetensors", no server path).
   */
  static fromHandle(fh: FileHandle, label: string): Promise<SafetensorsFile> {
    return SafetensorsFile.parse(fh, label, fh);
  }

  private static async parse(fh: FileHandle, path: string, keep: FileHandle | null): Promise<SafetensorsFile> {
    const st = await fh.stat();
    if (!st.isFile()) throw new SafetensorsError(path, `is ${fileKind(st)}, not a regular file`);
    const size = st.size;
    if (size < 8) throw new SafetensorsError(path, `file is ${size} bytes, too short for a safetensors header`);
    const lenBuf = Buffer.alloc(8);
    await readFully(fh, lenBuf, 0, path);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES) {
      throw new SafetensorsError(path, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte cap`);
    }
    if (8 + headerLen > size) {
      throw new SafetensorsError(
        path,
        `header length ${headerLen} runs past the end of the ${size}-byte file (truncated?)`,
      );
    }
    const headerBuf = Buffer.alloc(headerLen);
    await readFully(fh, headerBuf, 8, path);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      // JSON.parse's message quotes the text: report only where it failed.
      throw new SafetensorsError(path, `header is not valid JSON${jsonErrorPosition(e)}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) {
      throw new SafetensorsError(path, 'header must be a JSON object');
    }
    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const spans: [number, number, string][] = [];
    for (const [rawName, value] of Object.entries(header)) {
      if (rawName === '__metadata__') {
        if (value !== null && (typeof value !== 'object' || Array.isArray(value))) {
          throw new SafetensorsError(path, '__metadata__ must be an object of strings');
        }
        metadata = (value ?? {}) as Record<string, string>;
        continue;
      }
      const name = shortName(rawName);
      const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        throw new SafetensorsError(path, `tensor '${name}': entry is not an object`);
      }
      if (typeof v.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, v.dtype)) {
        throw new SafetensorsError(path, `tensor '${name}': unknown dtype ${shortName(JSON.stringify(v.dtype) ?? '')}`);
      }
      if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new SafetensorsError(path, `tensor '${name}': shape must be a list of non-negative integers`);
      }
      const offs = v.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
        throw new SafetensorsError(path, `tensor '${name}': data_offsets must be [begin, end]`);
      }
      const [begin, end] = offs as [number, number];
      const numel = (v.shape as number[]).reduce((a, b) => a * b, 1);
      if (end < begin || end - begin !== numel * DTYPE_BYTES[v.dtype]) {
        throw new SafetensorsError(
          path,
          `tensor '${name}': data_offsets [${begin}, ${end}] do not match shape [${(v.shape as number[]).slice(0, 8)}] of ${v.dtype}`,
        );
      }
      if (end > dataSize) {
        throw new SafetensorsError(
          path,
          `tensor '${name}': data ends at ${end}, past the ${dataSize}-byte data region (truncated?)`,
        );
      }
      spans.push([begin, end, name]);
      tensors.set(rawName, {
        name: rawName,
        dtype: v.dtype,
        shape: v.shape as number[],
        byteOffset: dataStart + begin,
        byteLength: end - begin,
      });
    }
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i][0] < spans[i - 1][1]) {
        throw new SafetensorsError(path, `tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap`);
      }
    }
    return new SafetensorsFile(path, tensors, metadata, keep);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return t;
  }

  /** Raw bytes of one tensor, in a fresh 8-byte-aligned buffer. */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const ab = new ArrayBuffer(Math.ceil(t.byteLength / 8) * 8);
    const bytes = new Uint8Array(ab, 0, t.byteLength);
    const fh = this.handle ?? (await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK));
    try {
      let done = 0;
      while (done < t.byteLength) {
        const chunk = Math.min(t.byteLength - done, 1 << 30);
        const { bytesRead } = await fh.read(bytes, done, chunk, t.byteOffset + done);
        if (bytesRead === 0) throw new SafetensorsError(this.path, `tensor '${shortName(name)}': file ended early`);
        done += bytesRead;
      }
    } finally {
      if (!this.handle) await fh.close();
    }
    return bytes;
  }

  /** A float tensor kept in its dtype (F32, F16 or BF16). */
  async readRaw(name: string): Promise<RawTensor> {
    const t = this.info(name);
    const bytes = await this.readBytes(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    switch (t.dtype) {
      case 'F32':
        return { dtype: 'f32', shape: t.shape, data: new Float32Array(bytes.buffer, 0, n) };
      case 'F16':
        return { dtype: 'f16', shape: t.shape, data: new Uint16Array(bytes.buffer, 0, n) };
      case 'BF16':
        return { dtype: 'bf16', shape: t.shape, data: new Uint16Array(bytes.buffer, 0, n) };
      default:
        throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}; expected F32, F16 or BF16`);
    }
  }

  /** A float tensor converted to f32. */
  async readF32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const raw = await this.readRaw(name);
    return { shape: raw.shape, data: toF32Array(raw.dtype, raw.data) };
  }
}

/** Reads exactly buf.length bytes at `position`; a file that shrank meanwhile is an error, not a short read. */
async function readFully(fh: FileHandle, buf: Buffer, position: number, path: string) {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new SafetensorsError(path, 'file ended early (truncated while reading?)');
    done += bytesRead;
  }
}

/** "a FIFO", "a directory", …: what a path that is not a regular file turned out to be. */
export function fileKind(st: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isSymbolicLink(): boolean;
}): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'a device or other special file';
}

/** " at position N" from a JSON.parse error, whose own message quotes the text it failed on. */
export function jsonErrorPosition(e: unknown): string {
  const m = /position (\d+)/.exec((e as Error)?.message ?? '');
  return m ? ` (at byte ${m[1]})` : '';
}

/** Tensor names as shown in messages: a header may hold names of any length. */
function shortName(name: string): string {
  return name.length > 200 ? `${name.slice(0, 200)}…` : name;
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';
  shape: number[];
  data: ArrayBufferView;
}

/** Writes a safetensors file (tests, the demo model, fixtures of our own). */
export async function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>) {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  await writeFile(path, out);
}
