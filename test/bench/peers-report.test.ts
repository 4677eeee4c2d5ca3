/** bench:peers' docs section and chart: generated from the artifact (medians of repeats), replaced between markers. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PEERS_SCHEMA, type PeersArtifact, type RunSummary, type ServerEntry } from '../../bench/peers/artifact.ts';
import { BEGIN, END, markdownSection, medianOf, peersChart, writeDocs } from '../../bench/peers/report.ts';
import { peerWorkloads, selectWorkloads } from '../../bench/peers/workloads.ts';

function run(repeat: number, tokPerS: number, extra: Partial<RunSummary> = {}): RunSummary {
  return {
    repeat,
    outputTokPerS: tokPerS,
    requests: 4,
    errors: 0,
    lengthMismatches: 0,
    meanOutputTokens: 128,
    ttftP50Ms: 1000 / tokPerS,
    ttftP99Ms: 2000 / tokPerS,
    itlP50Ms: 10,
    itlP99Ms: 20,
    loadAvg1: 3,
    ...extra,
  };
}

function server(key: string, label: string, w1: number[], w3: number[], failure: string | null = null): ServerEntry {
  return {
    key,
    label,
    format: 'bf16',
    version: failure ? null : `${key} 1.0`,
    failure,
    runs: failure ? {} : { W1: w1.map((x, i) => run(i + 1, x)), W3: w3.map((x, i) => run(i + 1, x)) },
  };
}

const ARTIFACT: PeersArtifact = {
  schema: PEERS_SCHEMA,
  generatedAt: '2026-12-04T22:30:00.000Z',
  machine: { threads: 2, isa: 'avx2', f32Gflops: 90, bf16Gflops: 0, readGBs: 20, copyGBs: 18 },
  model: 'SmolLM2-135M-Instruct (model-bf16)',
  adapters: { count: 32, rank: 16, targets: 'all seven projections', store: '/s' },
  client: 'loraplex bench',
  quick: true,
  repeats: 3,
  workloads: selectWorkloads(peerWorkloads(true), 'W1,W3'),
  servers: [
    server('loraplex', 'loraplex', [70, 80, 75], [160, 150, 170]),
    server('llamacpp-bf16', 'llama.cpp BF16', [90, 80, 85], [40, 50, 45]),
    server('vllm', 'vLLM CPU', [], [], 'start: Illegal instruction (core dumped)'),
  ],
  note: 'Shared CPU.',
};

test('loraplex run with a flag gets its own ratios against the peers and is not itself a peer', () => {
  const md = markdownSection({
    ...ARTIFACT,
    servers: [
      server('loraplex', 'loraplex', [70, 80, 75], [160, 150, 170]),
      server('loraplex-bf16dot', 'loraplex --bf16-dot', [80, 80, 80], [225, 225, 225]),
      server('llamacpp-bf16', 'llama.cpp BF16', [90, 80, 85], [40, 50, 45]),
    ],
  });
  assert.match(md, /loraplex ÷ peer, output tok\/s/);
  assert.match(md, /loraplex --bf16-dot ÷ peer, output tok\/s/);
  assert.match(md, /\| W3 \| 5\.00× \|/);
  assert.doesNotMatch(md, /\| workload \| loraplex --bf16-dot \| llama/);
});

test('figures are medians over repeats; a failed request run does not count', () => {
  const s = server('x', 'x', [10, 30, 20], []);
  assert.equal(
    medianOf(s, 'W1', (r) => r.outputTokPerS),
    20,
  );
  assert.equal(
    medianOf(s, 'W2', (r) => r.outputTokPerS),
    null,
  );
});

test('the section has one column per server, the ratios, and a failed server with its error', () => {
  const md = markdownSection(ARTIFACT);
  assert.ok(md.startsWith(BEGIN) && md.endsWith(END));
  assert.match(md, /\| W1 one stream, base, c=1, 128 in \/ 128 out \(output tok\/s\) \| 75\.0 \| 85\.0 \| – \|/);
  assert.match(md, /\| W3 \| 3\.56× \|/);
  assert.match(md, /vLLM CPU\*\* did not run: `start: Illegal instruction \(core dumped\)`/);
  assert.match(md, /llama\.cpp BF16: llamacpp-bf16 1\.0; runs W1×3, W3×3; every answer had exactly max_tokens tokens/);
  assert.match(md, /Load average \(1 min\) at the end of each run: median 3\.0/);
  assert.doesNotMatch(md, /NaN|undefined/);
  const svg = peersChart(ARTIFACT);
  assert.match(svg, /^<svg/);
  assert.doesNotMatch(svg, /vLLM/);
});

test('unknown workloads are refused by name', () => {
  assert.throws(() => selectWorkloads(peerWorkloads(false), 'W1,W9'), /unknown W9/);
});

test('writeDocs appends the section once, then replaces only what lies between the markers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peers-report-'));
  const doc = join(dir, 'benchmarks.md');
  await writeFile(doc, '# Benchmarks\n\nbefore\n');
  await writeDocs(ARTIFACT, doc, join(dir, 'peers.svg'));
  const first = await readFile(doc, 'utf8');
  assert.equal(first.split(BEGIN).length, 2);
  await writeFile(doc, `${first}\n## Later section\n`);
  await writeDocs({ ...ARTIFACT, servers: [server('loraplex', 'loraplex', [99], [1])] }, doc, join(dir, 'peers.svg'));
  const second = await readFile(doc, 'utf8');
  assert.equal(second.split(BEGIN).length, 2);
  assert.match(second, /^# Benchmarks\n\nbefore\n/);
  assert.match(second, /## Later section\n$/);
  assert.match(second, /\| 99\.0 \|/);
  assert.doesNotMatch(second, /llama\.cpp BF16/);
});

test('a 1B artifact has its own section and chart: writing it leaves the SmolLM2 section as it was', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peers-report-'));
  const doc = join(dir, 'benchmarks.md');
  await writeFile(doc, '# Benchmarks\n');
  await writeDocs(ARTIFACT, doc, join(dir, 'peers.svg'));
  const smol = await readFile(doc, 'utf8');
  const oneB: PeersArtifact = { ...ARTIFACT, size: '1b', servers: [server('loraplex', 'loraplex', [77], [1])] };
  await writeDocs(oneB, doc, join(dir, 'peers-1b.svg'));
  await writeDocs(oneB, doc, join(dir, 'peers-1b.svg'));
  const both = await readFile(doc, 'utf8');
  assert.ok(both.startsWith(smol.trimEnd()), 'the SmolLM2 section is untouched');
  assert.equal(both.split('<!-- bench:peers-1b begin').length, 2, 'one 1B section, replaced in place');
  assert.match(both, /## Peers at the 1B size\n/);
  assert.match(both, /!\[output tok\/s per workload and server\]\(figures\/peers-1b\.svg\)/);
  assert.match(both.slice(both.indexOf('bench:peers-1b begin')), /\| 77\.0 \|/);
  assert.equal(both.split(BEGIN).length, 2);
});
