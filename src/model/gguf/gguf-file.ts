/**
 * A GGUF file read through @huggingface/gguf's parser, from a file handle the caller opened (contained,
 * see adapter-files.ts): the parser asks for byte ranges through a fetch function that reads that handle,
 * so nothing is opened by path and nothing leaves the machine. Every tensor's data must lie inside the file.
 *
 *   const file = await GgufFile.fromHandle(fh, size);
 *   const a = await file.readF32(file.tensors.get('blk.0.attn_q.weight.lora_a')!);
 */
import type { FileHandle } from 'node:fs/promises';
import { GGMLQuantizationType, type GGUFTypedMetadata, GGUFValueType, gguf } from '@huggingface/gguf';
import { decodeTensor, READABLE_TYPES, tensorByteLength } from './tensor-data.ts';

export { GGUFValueType as GgufValueType };

/** subType: the element type of an array. */
export type GgufMetadata = Map<string, { type: GGUFValueType; value: unknown; subType?: GGUFValueType }>;

export interface GgufTensor {
  name: string;
  /** ggml's ne: ne[0] is the row length (numpy's last axis); a [rows, cols] matrix has ne [cols, rows]. */
  ne: number[];
  type: GGMLQuantizationType;
  offset: number; // absolute byte offset in the file
  byteLength: number;
}

/** A damaged or unreadable GGUF file; the message names no path. */
export class GgufFormatError extends Error {}

const MAX_NAME_CHARS = 120;
/** The parser's URL for our fetch function: never fetched from the network (the fetch reads the handle). */
const HANDLE_URL = 'https://gguf.invalid/adapter.gguf';

/** A tensor name from the file, cut and escaped for messages. */
export function shownName(name: string): string {
  const json = JSON.stringify(name).slice(1, -1);
  return json.length > MAX_NAME_CHARS ? `${json.slice(0, MAX_NAME_CHARS)}…` : json;
}

export class GgufFile {
  private constructor(
    private readonly fh: FileHandle,
    readonly metadata: GgufMetadata,
    readonly tensors: Map<string, GgufTensor>,
  ) {}

  static async fromHandle(fh: FileHandle, size: number): Promise<GgufFile> {
    let parsed: Awaited<ReturnType<typeof gguf>> & { typedMetadata: GGUFTypedMetadata };
    try {
      parsed = await gguf(HANDLE_URL, { fetch: handleFetch(fh, size), typedMetadata: true });
    } catch (e) {
      if (e instanceof GgufFormatError) throw e;
      throw new GgufFormatError(parserProblem(e));
    }
    if (!parsed.littleEndian) throw new GgufFormatError('is a big-endian GGUF file; only little-endian files are read');
    const metadata: GgufMetadata = new Map();
    for (const [key, entry] of Object.entries(parsed.typedMetadata)) {
      if (key === 'version' || key === 'tensor_count' || key === 'kv_count') continue;
      const subType = (entry as { subType?: GGUFValueType }).subType;
      metadata.set(key, { type: entry.type, value: entry.value, ...(subType === undefined ? {} : { subType }) });
    }
    const dataStart = Number(parsed.tensorDataOffset);
    if (dataStart > size) {
      throw new GgufFormatError(
        `ends inside its header (${size} bytes; the tensor data would start at ${dataStart}): the file is truncated`,
      );
    }
    const tensors = new Map<string, GgufTensor>();
    for (const info of parsed.tensorInfos) {
      const name = shownName(info.name);
      if (tensors.has(info.name)) throw new GgufFormatError(`holds tensor '${name}' twice`);
      const ne = info.shape.map(Number);
      const byteLength = tensorByteLength(info.dtype, ne);
      if (byteLength === null) {
        throw new GgufFormatError(
          `tensor '${name}' has type ${GGMLQuantizationType[info.dtype] ?? info.dtype} with shape [${ne.join(', ')}], which loraplex cannot read (${READABLE_TYPES} are read)`,
        );
      }
      const offset = dataStart + Number(info.offset);
      if (!Number.isSafeInteger(offset) || offset + byteLength > size) {
        throw new GgufFormatError(
          `tensor '${name}' lies past the end of the file (${size} bytes): the file is truncated`,
        );
      }
      tensors.set(info.name, { name: info.name, ne, type: info.dtype, offset, byteLength });
    }
    return new GgufFile(fh, metadata, tensors);
  }

  /** The tensor's values as f32, in row-major order (ne[0] fastest). */
  async readF32(t: GgufTensor): Promise<Float32Array> {
    return decodeTensor(t.type, await this.readBytes(t));
  }

  /** The tensor's bytes as stored (quantized blocks stay blocks). */
  async readBytes(t: GgufTensor): Promise<Buffer> {
    const bytes = Buffer.alloc(t.byteLength);
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await this.fh.read(bytes, done, bytes.length - done, t.offset + done);
      if (bytesRead === 0)
        throw new GgufFormatError(
          `tensor '${shownName(t.name)}' could not be read whole: the file shrank while loading`,
        );
      done += bytesRead;
    }
    return bytes;
  }
}

/**
 * The parser reads in 2 MB ranges and may ask for one range past a small file's end; a second means it is
 * still reading the header there (a truncated or forged count), so it stops.
 */
function handleFetch(fh: FileHandle, size: number): typeof fetch {
  let pastEnd = 0;
  return (async (_input: unknown, init?: RequestInit) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get('range') ?? '');
    if (!range) throw new GgufFormatError('could not be read (the GGUF parser asked for no byte range)');
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]) + 1, size);
    if (start >= size && ++pastEnd > 1) {
      throw new GgufFormatError(
        `ends inside its header (${size} bytes): the file is truncated or its counts are wrong`,
      );
    }
    const bytes = Buffer.alloc(Math.max(0, end - start));
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await fh.read(bytes, done, bytes.length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return new Response(bytes.subarray(0, done), {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${start + done - 1}/${size}` },
    });
  }) as typeof fetch;
}

/** The parser's message, kept only where it describes the format: it may quote a key or name from the file. */
function parserProblem(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.includes('magic number')) return 'is not a GGUF file (it does not start with "GGUF")';
  if (message.includes('unsupported version')) return 'has a GGUF version this reader does not know (1 to 3 are read)';
  if (e instanceof RangeError) return 'ends inside its header: the file is truncated';
  if (message.startsWith('general.alignment')) return 'has an invalid general.alignment';
  const safe =
    /^(?:Tensor count|KV metadata count|String length|Tensor n_dims|Unsupported metadata type|Exceeded maximum chunk fetches)[^"'\n]{0,120}$/;
  if (safe.test(message)) return `has a damaged GGUF header (${message})`;
  return 'has a damaged GGUF header';
}
