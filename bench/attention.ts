/**
 * Decode attention over the paged KV cache with f32 vs bf16 KV at a long context (default: 2048 tokens,
 * Hq/Hkv = 32/8, D = 64, block 16, a batch of 1 and 8 decodes): time per call, the KV bytes a call reads
 * and the bandwidth that implies, against the machine's measured read peak when given.
 * A bf16 cache halves the bytes read; it is widened chunk by chunk, so it wins where attention is bound by
 * memory (long contexts, many sequences) and costs a little where the cache fits in cache.
 *
 *   npx tsx bench/attention.ts [--context 2048] [--repeats 7]
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { f32ToBf16 } from '../src/kernels/dtype.ts';
import { nativeAttentionKernels } from '../src/kernels/native/attention.ts';
import type { AttentionBatch, AttentionShape, KvBuffer } from '../src/kernels/types.ts';
import { medianSeconds, percent, printTable, randomF32 } from './util.ts';

export interface AttentionBenchOptions {
  context?: number;
  batches?: number[];
  repeats?: number;
  /** The machine's measured memory read peak (GB/s), for the last column; omitted when unknown. */
  readGBs?: number;
}

export interface AttentionBenchRow {
  dtype: 'f32' | 'bf16';
  seqs: number;
  context: number;
  us: number;
  kvBytes: number;
  gbs: number;
}

const SHAPE: AttentionShape = { numHeads: 32, numKvHeads: 8, headDim: 64, blockSize: 16 };

/** `seqs` decodes, each over `context` cached tokens in its own shuffled blocks. */
function decodeBatch(seqs: number, context: number): { batch: AttentionBatch; numBlocks: number } {
  const perSeq = Math.ceil(context / SHAPE.blockSize);
  const numBlocks = seqs * perSeq;
  const ids = Int32Array.from({ length: numBlocks }, (_, i) => (i * 7919) % numBlocks); // 7919 prime: a permutation
  return {
    batch: {
      qStart: Int32Array.from({ length: seqs + 1 }, (_, s) => s),
      kvLen: new Int32Array(seqs).fill(context),
      blockTables: ids,
      blockTableStart: Int32Array.from({ length: seqs }, (_, s) => s * perSeq),
      numSeqs: seqs,
    },
    numBlocks,
  };
}

export function runAttentionBench(options: AttentionBenchOptions = {}): AttentionBenchRow[] {
  const { context = 2048, batches = [1, 8], repeats = 7 } = options;
  const { numHeads, numKvHeads, headDim, blockSize } = SHAPE;
  const rows: AttentionBenchRow[] = [];
  for (const seqs of batches) {
    const { batch, numBlocks } = decodeBatch(seqs, context);
    const cacheLength = numBlocks * blockSize * numKvHeads * headDim;
    const k32 = randomF32(cacheLength, 1, 2);
    const v32 = randomF32(cacheLength, 2);
    const caches: Record<'f32' | 'bf16', [KvBuffer, KvBuffer]> = {
      f32: [k32, v32],
      bf16: [Uint16Array.from(k32, f32ToBf16), Uint16Array.from(v32, f32ToBf16)],
    };
    const q = randomF32(seqs * numHeads * headDim, 3);
    const out = new Float32Array(q.length);
    for (const dtype of ['f32', 'bf16'] as const) {
      const [kCache, vCache] = caches[dtype];
      const seconds = medianSeconds(() => nativeAttentionKernels.pagedAttention(q, kCache, vCache, out, SHAPE, batch), {
        repeats,
      });
      const kvBytes = 2 * seqs * context * numKvHeads * headDim * (dtype === 'f32' ? 4 : 2);
      rows.push({ dtype, seqs, context, us: seconds * 1e6, kvBytes, gbs: kvBytes / seconds / 1e9 });
    }
  }
  printTable(
    ['KV dtype', 'decodes', 'context', 'µs / call', 'KV MiB read', 'GB/s', 'of read peak'],
    rows.map((r) => [
      r.dtype,
      String(r.seqs),
      String(r.context),
      r.us.toFixed(0),
      (r.kvBytes / 2 ** 20).toFixed(1),
      r.gbs.toFixed(1),
      options.readGBs ? percent(r.gbs, options.readGBs) : '-',
    ]),
  );
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: { context: { type: 'string', default: '2048' }, repeats: { type: 'string', default: '7' } },
  });
  runAttentionBench({ context: Number(values.context), repeats: Number(values.repeats) });
}
