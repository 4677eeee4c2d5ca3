/**
 * Sizes as flags take them: "2GB" (decimal, as Hugging Face writes shard sizes), "1GiB" (binary), "500MB", or a
 * plain number of bytes. One parser for --max-shard-size and --max-cpu-lora-bytes.
 */
const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Whole bytes (≥ 1), or NaN when `text` is not a size. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(|B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$/i.exec(text);
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]) : Number.NaN;
  return bytes >= 1 && Number.isSafeInteger(bytes) ? bytes : Number.NaN;
}
