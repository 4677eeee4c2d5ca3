/**
 * End to end: `loraplex serve` (the demo: base + 4 adapters) on loopback, driven by `loraplex bench` with
 * --num-adapters 4; the result file holds the asked request count, output lengths from usage equal to the
 * fixed length, one entry per adapter, records and charts; `bench compare` reads it back.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { BenchResult } from '../../src/bench/result.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'bin/loraplex.js');
let server: ChildProcess;
let url: string;
let dir: string;
let serverLog = '';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves once the server logs that it serves (after markReady): its log is the event, never a poll. */
function waitReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!serverLog.includes("serving '")) return;
      child.stderr?.off('data', check);
      resolve();
    };
    child.stderr?.on('data', check);
    child.once('exit', (code) =>
      reject(new Error(`loraplex serve exited (${code}) before it was ready:\n${serverLog}`)),
    );
    check();
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraplex-bench-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, [cli, 'serve', '--port', String(port), '--kv-cache-tokens', '4096'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (d) => {
    serverLog += d;
  });
  server.stderr?.on('data', (d) => {
    serverLog += d;
  });
  await waitReady(server);
});

after(async () => {
  server.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
});

describe('loraplex bench against loraplex serve', () => {
  test('8 requests over the 4 demo adapters: counts, fixed lengths from usage, per-adapter entries', async () => {
    const artifacts = join(dir, 'run');
    const { stdout } = await run(
      process.execPath,
      [
        cli,
        'bench',
        '--url',
        url,
        '--num-adapters',
        '4',
        '--concurrency',
        '2',
        '--request-count',
        '8',
        '--input-tokens',
        '32',
        '--output-tokens',
        '6',
        '--warmup-request-count',
        '4',
        '--goodput',
        'time_to_first_token:60000',
        '--artifact-dir',
        artifacts,
        '--progress',
        'off',
      ],
      { timeout: 15000 },
    );
    assert.match(stdout, /Time to First Token \(ms\)/);
    const result = JSON.parse(await readFile(join(artifacts, 'bench.json'), 'utf8')) as BenchResult;
    assert.deepEqual(result.models, ['demo-pirate', 'demo-poet', 'demo-chef', 'demo-robot']);
    assert.equal(result.points.length, 1);
    const m = result.points[0].overall;
    assert.equal(m.request_count, 8, JSON.stringify(m.errors));
    assert.equal(m.error_request_count, 0);
    assert.equal(m.output_tokens_from_tokenizer, 0, 'lengths come from usage');
    assert.equal(m.stats.output_sequence_length?.min, 6);
    assert.equal(m.stats.output_sequence_length?.max, 6);
    assert.equal(m.stats.input_sequence_length?.avg, 32);
    assert.equal(m.output_length_mismatch.count, 0);
    assert.equal(m.total_output_tokens, 48);
    assert.equal(m.good_request_count, 8);
    assert.ok((m.stats.time_to_first_token?.p50 ?? 0) > 0);
    assert.ok((m.stats.inter_token_latency?.avg ?? 0) > 0);
    assert.ok(m.output_token_throughput > 0);
    const perModel = result.points[0].perModel;
    assert.deepEqual(Object.keys(perModel).sort(), ['demo-chef', 'demo-pirate', 'demo-poet', 'demo-robot']);
    for (const entry of Object.values(perModel)) assert.equal(entry.request_count, 2);
    const lines = (await readFile(join(artifacts, 'records-c2.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 8);
    assert.equal(JSON.parse(lines[0]).usage.completionTokens, 6);
    for (const chart of ['throughput.svg', 'ttft.svg', 'itl.svg', 'adapters-latency-c2.svg']) {
      assert.ok(existsSync(join(artifacts, chart)), chart);
    }

    const compared = await run(process.execPath, [
      cli,
      'bench',
      'compare',
      join(artifacts, 'bench.json'),
      join(artifacts, 'bench.json'),
    ]);
    assert.match(compared.stdout, /TTFT \(ms\) p50 .* 1\.000 +\+0\.0%/);
  });
});
