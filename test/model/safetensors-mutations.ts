/**
 * Seeded mutations of valid safetensors bytes and of JSON values, for the fuzz tests of the safetensors
 * reader and of adapter loads: bit flips, truncations, insertions, header-length lies, huge offsets, wrong
 * dtypes, duplicated names, random JSON values.
 */
import type { BenchRandom } from '../../src/bench/random.ts';

const pick = <T>(rng: BenchRandom, xs: readonly T[]): T => xs[rng.int(xs.length)];

const EDGE_NUMBERS = [
  0,
  -1,
  1,
  0.5,
  -0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  1e30,
  1e300,
  -1e300,
  Number.MAX_SAFE_INTEGER,
];

/** A random JSON value: edge numbers, odd strings, deep or wide containers. */
export function randomJson(rng: BenchRandom, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 5 : 7)) {
    case 0:
      return pick(rng, EDGE_NUMBERS);
    case 1:
      return pick(rng, ['', 'F32', 'LORA', 'all-linear', '.*', '(', '\u0000', 'x'.repeat(1000), '../../etc/passwd']);
    case 2:
      return pick(rng, [true, false, null]);
    case 3:
      return rng.next() * 100 - 50;
    case 4:
      return rng.int(100);
    case 5:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: rng.int(4) }, (_, i) => [
          pick(rng, ['q_proj', 'r', 'a', `k${i}`]),
          randomJson(rng, depth + 1),
        ]),
      );
  }
}

/** Damage to raw bytes: flips, truncation, insertion, deletion. */
export function mutateBytes(rng: BenchRandom, input: Uint8Array): Uint8Array {
  const bytes = Buffer.from(input);
  switch (rng.int(4)) {
    case 0: {
      for (let n = 1 + rng.int(8); n > 0 && bytes.length > 0; n--) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      return bytes;
    }
    case 1:
      return bytes.subarray(0, rng.int(bytes.length + 1));
    case 2: {
      const at = rng.int(bytes.length + 1);
      const extra = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
      return Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)]);
    }
    default: {
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + rng.int(16))]);
    }
  }
}

/** The header length's 8 bytes replaced by a lie. */
export function lieAboutHeaderLength(rng: BenchRandom, input: Uint8Array): Uint8Array {
  const bytes = Buffer.from(input);
  const real = Number(bytes.readBigUInt64LE(0));
  const lie = pick(rng, [
    0n,
    1n,
    2n ** 64n - 1n,
    2n ** 63n,
    BigInt(real + 1),
    BigInt(Math.max(0, real - 1)),
    BigInt(bytes.length),
    BigInt(rng.int(1 << 30)),
  ]);
  bytes.writeBigUInt64LE(lie, 0);
  return bytes;
}

/** A structurally valid file with a tampered header: huge offsets, wrong dtypes, odd shapes, random values, duplicated names. */
export function mutateHeader(rng: BenchRandom, input: Uint8Array): Uint8Array {
  const bytes = Buffer.from(input);
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')) as Record<string, Record<string, unknown>>;
  const data = bytes.subarray(8 + len);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(rng, names);
  const entry = header[name];
  let text: string;
  switch (rng.int(7)) {
    case 0:
      entry.data_offsets = [pick(rng, EDGE_NUMBERS), pick(rng, EDGE_NUMBERS)];
      break;
    case 1:
      entry.dtype = pick(rng, ['F64', 'I8', 'BOOL', 'F8_E4M3', 'U64', 'F33', 'f32', '', 'constructor', '__proto__']);
      break;
    case 2:
      entry.shape = pick(rng, [[], [0], [-1, 4], [2 ** 53, 2], [1e300], [1.5], ['4'], [2 ** 31, 2 ** 31]]);
      break;
    case 3:
      entry[pick(rng, ['dtype', 'shape', 'data_offsets'])] = randomJson(rng);
      break;
    case 4:
      header[pick(rng, [...names, '__metadata__', 'extra'])] = randomJson(rng) as Record<string, unknown>;
      break;
    case 5: {
      // The last entry's name repeated: JSON.parse keeps the last, which must still add up.
      text = JSON.stringify(header);
      const dup = `,${JSON.stringify(name)}:${JSON.stringify({ ...entry, data_offsets: [0, 4] })}`;
      text = `${text.slice(0, -1)}${dup}}`;
      return rebuild(text, data);
    }
    default:
      delete header[name];
  }
  text = JSON.stringify(header);
  return rebuild(text, data);
}

function rebuild(headerText: string, data: Uint8Array): Uint8Array {
  const header = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + header.length + data.length);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(out, 8);
  Buffer.from(data).copy(out, 8 + header.length);
  return out;
}

/** One of the mutations above, chosen at random. */
export function mutateSafetensors(rng: BenchRandom, input: Uint8Array): Uint8Array {
  const r = rng.int(10);
  if (r < 4) return mutateBytes(rng, input);
  if (r < 5) return lieAboutHeaderLength(rng, input);
  return mutateHeader(rng, input);
}
