/** bench:sizes' docs section: generated from the artifact, replaced between its markers, nothing else touched. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SizeEntry, SizesArtifact } from '../../bench/sizes/artifact.ts';
import { BEGIN, decodeChart, END, markdownSection, writeDocs } from '../../bench/sizes/report.ts';

const MACHINE = { threads: 2, isa: 'avx2', f32Gflops: 90, bf16Gflops: 0, readGBs: 20, copyGBs: 18 };

function entry(label: string, decodeTokPerS: number | null, llamaTokPerS: number | null): SizeEntry {
  return {
    label,
    shapeOf: 'Llama-3.2-1B',
    format: 'GGUF Q8_0',
    path: `/m/${label}.gguf`,
    ggufPath: `/m/${label}.gguf`,
    gguf: { fileBytes: 1.4e9, bytesPerToken: 1.3e9, bytesByType: { Q8_0: 1.3e9 }, loadEstimateBytes: 1.8e9 },
    loraplex:
      decodeTokPerS === null
        ? null
        : {
            model: `/m/${label}.gguf`,
            dtypes: ['q8_0'],
            loadSeconds: 3,
            weightBytesPerToken: 1.3e9,
            heldBytesPerToken: 1.376e9, // Q8_0's re-laid blocks: f32 scales, 1.059× the file's bytes
            decodeSecondsPerToken: 1 / decodeTokPerS,
            decodeSteps: 32,
            prefillTokens: 256,
            prefillSeconds: 4,
            sampleTokens: [1, 2],
            decodeTokPerS,
            prefillTokPerS: 64,
            readGBs: 1.3 * decodeTokPerS,
            bandwidthFraction: (1.3 * decodeTokPerS) / 20,
            heldBandwidthFraction: (1.376 * decodeTokPerS) / 20,
          },
    ...(decodeTokPerS === null ? { loraplexSkipped: 'not loaded (would hold 20.0 GB)' } : {}),
    llamacpp:
      llamaTokPerS === null
        ? null
        : {
            promptTokens: 128,
            genTokens: 128,
            threads: 2,
            repetitions: 3,
            prefillTokPerS: 80,
            prefillStddev: 1,
            decodeTokPerS: llamaTokPerS,
            decodeStddev: 0.1,
            build: '1 (abc)',
            modelType: 'llama 1B Q8_0',
            modelBytes: 1.4e9,
          },
    llamacppReadGBs: llamaTokPerS === null ? null : 1.3 * llamaTokPerS,
    llamacppBandwidthFraction: llamaTokPerS === null ? null : (1.3 * llamaTokPerS) / 20,
    serving: null,
  };
}

const ARTIFACT: SizesArtifact = {
  generatedAt: '2026-12-04T22:00:00.000Z',
  note: 'Shared CPU.',
  machine: [MACHINE, MACHINE],
  readGBs: 20,
  settings: {
    decodeSteps: 32,
    prefillTokens: 256,
    serving: { concurrency: 4, requests: 8, inputTokens: 64, outputTokens: 32, repeats: 2 },
    adapterRank: 16,
  },
  entries: [entry('1B Q8_0', 12, 10), entry('8B Q4_K_M', null, 3)],
  seconds: 100,
};

test('the section states the ratio, the bandwidth shares (file and held bytes) and why a row has no loraplex figures', () => {
  const md = markdownSection(ARTIFACT);
  assert.ok(md.startsWith(BEGIN) && md.endsWith(END));
  assert.match(
    md,
    /\| 1B Q8_0 \| q8_0 \| 1\.30 · 1\.38 \| 12\.00 \| 15\.6 \(78%; 83%\) \| 10\.00 \| 13\.0 \(65%\) \| 1\.20× \|/,
  );
  assert.match(md, /\| 8B Q4_K_M \| not loaded \(would hold 20\.0 GB\) \| 1\.30 · – \|/);
  assert.doesNotMatch(md, /NaN|undefined/);
  assert.match(decodeChart(ARTIFACT), /^<svg/);
});

test('writeDocs appends the section once, then replaces only what lies between the markers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sizes-report-'));
  const doc = join(dir, 'benchmarks.md');
  await writeFile(doc, '# Benchmarks\n\nbefore\n');
  await writeDocs(ARTIFACT, doc, join(dir, 'sizes.svg'));
  const first = await readFile(doc, 'utf8');
  assert.equal(first.split(BEGIN).length, 2);
  await writeFile(doc, `${first}\n## Later section\n`);
  await writeDocs({ ...ARTIFACT, entries: [entry('1B Q8_0', 24, 10)] }, doc, join(dir, 'sizes.svg'));
  const second = await readFile(doc, 'utf8');
  assert.equal(second.split(BEGIN).length, 2);
  assert.match(second, /^# Benchmarks\n\nbefore\n/);
  assert.match(second, /## Later section\n$/);
  assert.match(second, /\| 24\.00 \|/);
  assert.doesNotMatch(second, /8B Q4_K_M/);
});
