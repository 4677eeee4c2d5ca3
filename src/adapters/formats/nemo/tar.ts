/**
 * Lists the regular files of a tar archive (ustar, PAX and GNU long names), as Python's tarfile writes the
 * .nemo archives NeMo saves (SaveRestoreConnector._make_nemo_file_from_folder: `tarfile.open(path, "w:")`,
 * members under "./"). Links and devices are listed as such and never followed; names are only compared, never
 * joined into paths. Every header checksum is checked.
 */
import { type ByteSource, FormatError } from './byte-source.ts';

export interface TarMember {
  name: string; // "./" stripped
  type: 'file' | 'directory' | 'link' | 'other';
  offset: number; // of the data in the archive
  size: number;
}

const BLOCK = 512;
/** Most members read: a .nemo holds a handful. */
const MAX_MEMBERS = 10_000;
/** Most bytes of one PAX or GNU long-name record. */
const MAX_EXTENDED_HEADER = 1 << 20;

export async function listTar(src: ByteSource): Promise<TarMember[]> {
  const members: TarMember[] = [];
  let pos = 0;
  let longName: string | null = null;
  let paxPath: string | null = null;
  let paxSize: number | null = null;
  while (pos + BLOCK <= src.size) {
    const header = await src.read(pos, BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive blocks
    checkChecksum(header, pos);
    const typeflag = String.fromCharCode(header[156] || 0x30);
    let size = headerSize(header, pos);
    if (paxSize !== null) size = paxSize;
    const dataStart = pos + BLOCK;
    if (dataStart + size > src.size) throw new FormatError(`member at byte ${pos} runs past the end (truncated)`);
    pos = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (typeflag === 'x' || typeflag === 'L') {
      if (size > MAX_EXTENDED_HEADER) throw new FormatError(`an extended header of ${size} bytes`);
      const body = await src.read(dataStart, size);
      if (typeflag === 'L') longName = cString(body);
      else ({ path: paxPath, size: paxSize } = parsePax(body));
      continue;
    }
    if (typeflag === 'g') continue; // global PAX header: nothing the reader needs
    const name = normalize(longName ?? paxPath ?? ustarName(header));
    longName = paxPath = paxSize = null;
    members.push({ name, type: memberType(typeflag), offset: dataStart, size });
    if (members.length > MAX_MEMBERS) throw new FormatError(`more than ${MAX_MEMBERS} members`);
  }
  if (members.length === 0) throw new FormatError('not a tar archive (no member headers)');
  return members;
}

function memberType(flag: string): TarMember['type'] {
  if (flag === '0' || flag === '7') return 'file';
  if (flag === '5') return 'directory';
  if (flag === '1' || flag === '2') return 'link';
  return 'other';
}

function checkChecksum(h: Buffer, pos: number) {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  const stored = parseOctal(h.subarray(148, 156));
  if (stored !== sum) throw new FormatError(`not a tar archive (header checksum at byte ${pos} does not match)`);
}

function headerSize(h: Buffer, pos: number): number {
  const field = h.subarray(124, 136);
  if (field[0] & 0x80) {
    // base-256 (GNU) for sizes of 8 GiB and more
    let v = 0;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i];
    if (!Number.isSafeInteger(v)) throw new FormatError(`member at byte ${pos} has an impossible size`);
    return v;
  }
  const v = parseOctal(field);
  if (v === null) throw new FormatError(`member at byte ${pos} has no readable size`);
  return v;
}

function parseOctal(field: Buffer): number | null {
  const text = cString(field).trim();
  if (!/^[0-7]+$/.test(text)) return text === '' ? 0 : null;
  return Number.parseInt(text, 8);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function ustarName(h: Buffer): string {
  const name = cString(h.subarray(0, 100));
  const isUstar = h.subarray(257, 262).toString('latin1') === 'ustar';
  const prefix = isUstar ? cString(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** PAX records: "<len> <key>=<value>\n"; only path and size matter here. */
function parsePax(body: Buffer): { path: string | null; size: number | null } {
  let path: string | null = null;
  let size: number | null = null;
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    const len = Number.parseInt(body.subarray(pos, space).toString('latin1'), 10);
    if (space < 0 || !Number.isSafeInteger(len) || len <= 0 || pos + len > body.length) {
      throw new FormatError('a malformed PAX extended header');
    }
    const record = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') path = value;
    if (key === 'size') {
      size = Number(value);
      if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(`a PAX size of '${value.slice(0, 40)}'`);
    }
    pos += len;
  }
  return { path, size };
}

function normalize(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  return n.replace(/\/+$/, '');
}
