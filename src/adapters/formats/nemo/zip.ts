/**
 * Reads the zip archive torch.save writes (PyTorchStreamWriter: entries stored uncompressed, ZIP64 records
 * past 4 GiB): the central directory, then one entry's bytes. Deflated entries (a checkpoint re-zipped by
 * hand) are inflated with node's zlib, bounded by the size the directory declares; every entry's CRC-32 is
 * checked.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { type ByteSource, FormatError } from './byte-source.ts';

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  compressedSize: number;
  size: number;
  crc: number;
  localHeader: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const MAX_ENTRIES = 1_000_000;
/** Most bytes one entry may inflate to (node's Buffer limit is near there anyway). */
const MAX_ENTRY_BYTES = 2 ** 32;

export async function listZip(src: ByteSource): Promise<Map<string, ZipEntry>> {
  const tailLength = Math.min(src.size, 22 + 0xffff);
  const tail = await src.read(src.size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new FormatError('not a zip archive (no end-of-central-directory record)');
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  const locatorAt = src.size - tailLength + eocd - 20;
  if (locatorAt >= 0 && (await src.read(locatorAt, 4)).readUInt32LE(0) === ZIP64_LOCATOR_SIG) {
    const recordAt = u64((await src.read(locatorAt, 20)).readBigUInt64LE(8), 'the ZIP64 record offset');
    const record = await src.read(recordAt, 56);
    if (record.readUInt32LE(0) !== ZIP64_EOCD_SIG) throw new FormatError('a broken ZIP64 end-of-directory record');
    count = u64(record.readBigUInt64LE(32), 'the entry count');
    dirSize = u64(record.readBigUInt64LE(40), 'the directory size');
    dirOffset = u64(record.readBigUInt64LE(48), 'the directory offset');
  }
  if (count > MAX_ENTRIES) throw new FormatError(`${count} entries`);
  const dir = await src.read(dirOffset, dirSize);
  const entries = new Map<string, ZipEntry>();
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 46 > dir.length || dir.readUInt32LE(pos) !== CENTRAL_SIG) {
      throw new FormatError(`central directory entry ${i} is damaged`);
    }
    const method = dir.readUInt16LE(pos + 10);
    const crc = dir.readUInt32LE(pos + 16);
    let compressedSize = dir.readUInt32LE(pos + 20);
    let size = dir.readUInt32LE(pos + 24);
    const nameLength = dir.readUInt16LE(pos + 28);
    const extraLength = dir.readUInt16LE(pos + 30);
    const commentLength = dir.readUInt16LE(pos + 32);
    let localHeader = dir.readUInt32LE(pos + 42);
    const end = pos + 46 + nameLength + extraLength + commentLength;
    if (end > dir.length) throw new FormatError(`central directory entry ${i} runs past the directory`);
    const name = dir.subarray(pos + 46, pos + 46 + nameLength).toString('utf8');
    // ZIP64 extra field: the 64-bit values of whichever 32-bit fields are 0xffffffff, in this order.
    const extra = dir.subarray(pos + 46 + nameLength, pos + 46 + nameLength + extraLength);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const len = extra.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        const next = (what: string) => {
          if (f + 8 > e + 4 + len) throw new FormatError(`entry '${name}' has a short ZIP64 field`);
          const v = u64(extra.readBigUInt64LE(f), what);
          f += 8;
          return v;
        };
        if (size === 0xffffffff) size = next('a size');
        if (compressedSize === 0xffffffff) compressedSize = next('a compressed size');
        if (localHeader === 0xffffffff) localHeader = next('an offset');
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, crc, localHeader });
    pos = end;
  }
  return entries;
}

export async function readZipEntry(src: ByteSource, entry: ZipEntry): Promise<Buffer> {
  const local = await src.read(entry.localHeader, 30);
  if (local.readUInt32LE(0) !== LOCAL_SIG) throw new FormatError(`entry '${entry.name}' has no local header`);
  const dataStart = entry.localHeader + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (entry.size > MAX_ENTRY_BYTES) throw new FormatError(`entry '${entry.name}' declares ${entry.size} bytes`);
  const raw = await src.read(dataStart, entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) throw new FormatError(`stored entry '${entry.name}' changes size`);
    data = raw;
  } else if (entry.method === 8) {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
    } catch {
      throw new FormatError(`entry '${entry.name}' does not inflate to its declared ${entry.size} bytes`);
    }
    if (data.length !== entry.size) throw new FormatError(`entry '${entry.name}' inflates to ${data.length} bytes`);
  } else {
    throw new FormatError(
      `entry '${entry.name}' uses compression method ${entry.method}; only stored and deflate are read`,
    );
  }
  if (crc32(data) >>> 0 !== entry.crc >>> 0) throw new FormatError(`entry '${entry.name}' fails its CRC-32 check`);
  return data;
}

function u64(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${what} is ${v}`);
  return Number(v);
}
