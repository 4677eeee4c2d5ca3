/**
 * Random-access bytes: an open file, a range of one (a member of a tar archive), or a buffer. The tar and zip
 * readers read through it, so a .nemo archive is never copied whole into memory when it is not compressed.
 */
import type { FileHandle } from 'node:fs/promises';

export class FormatError extends Error {}

export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes from `offset`; a FormatError when they are not all there. */
  read(offset: number, length: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer): ByteSource {
  return {
    size: buf.length,
    async read(offset, length) {
      checkRange(offset, length, buf.length);
      return buf.subarray(offset, offset + length);
    },
  };
}

export function fileSource(fh: FileHandle, size: number): ByteSource {
  return {
    size,
    async read(offset, length) {
      checkRange(offset, length, size);
      const out = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead === 0)
          throw new FormatError(`the file ends before byte ${offset + length} (it shrank while read)`);
        done += bytesRead;
      }
      return out;
    },
  };
}

/** Bytes [start, start + size) of another source. */
export function subSource(parent: ByteSource, start: number, size: number): ByteSource {
  checkRange(start, size, parent.size);
  return {
    size,
    read(offset, length) {
      checkRange(offset, length, size);
      return parent.read(start + offset, length);
    },
  };
}

function checkRange(offset: number, length: number, size: number) {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new FormatError(`a read at ${offset} of ${length} bytes`);
  }
  if (offset + length > size) {
    throw new FormatError(`needs bytes up to ${offset + length}, but there are ${size} (truncated)`);
  }
}
