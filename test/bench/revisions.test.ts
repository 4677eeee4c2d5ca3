/**
 * bench:revisions' readers and arithmetic: bench/engine.ts's printed lines (the same in old checkouts) become
 * named metrics; paired ratios orient by metric (tok/s higher is better, ms lower) and call a spread that
 * straddles 1 "within noise".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEngineOutput } from '../../bench/revisions/engine-run.ts';
import { comparePairs } from '../../bench/revisions/paired.ts';

const ENGINE_STDOUT = `loraplex bench:engine — /x/model
CPU: best ISA avx2, 2 threads
workload: 64 prompts × 128 tokens in, 64 tokens out, greedy; median of 1

── bf16
base              210.5 output tok/s      631 total tok/s   (19.46 s; runs 19.46)
100 adapters      180.0 output tok/s      540 total tok/s   (22.75 s; runs 22.75)
ratios: 100/1 adapters 0.900 (aim ≥ 0.9), 32/1 0.950
batch-1 decode: 14.20 ms/token (70.4 tok/s), 270 MB of weights/step → 19.0 GB/s = 80% of measured read bandwidth

`;

test('parseEngineOutput names each figure by dtype and workload', () => {
  assert.deepEqual(parseEngineOutput(ENGINE_STDOUT), {
    'bf16 · base · output tok/s': 210.5,
    'bf16 · 100 adapters · output tok/s': 180,
    'bf16 · batch-1 decode · ms/token': 14.2,
  });
  assert.throws(() => parseEngineOutput('nothing here'), /no figures/);
});

test('comparePairs: medians, ratio of medians, per-pair spread and verdict by direction', () => {
  const pairs = [
    { a: { 'x · output tok/s': 100, 'x · ITL p50 ms': 10 }, b: { 'x · output tok/s': 110, 'x · ITL p50 ms': 9 } },
    { a: { 'x · output tok/s': 90, 'x · ITL p50 ms': 12 }, b: { 'x · output tok/s': 99, 'x · ITL p50 ms': 13 } },
    { a: { 'x · output tok/s': 120, 'x · ITL p50 ms': 11 }, b: { 'x · output tok/s': 126, 'x · ITL p50 ms': 10 } },
  ];
  const [tput, itl] = comparePairs(pairs);
  assert.equal(tput.medianA, 100);
  assert.equal(tput.medianB, 110);
  assert.equal(tput.ratio, 1.1);
  assert.equal(tput.min, 1.05);
  assert.equal(tput.max, 1.1);
  assert.equal(tput.verdict, 'better');
  assert.equal(itl.better, 'lower');
  assert.equal(itl.verdict, 'within noise'); // 0.9 and 0.909 but 1.083: straddles 1
  const worse = comparePairs([{ a: { 'y ms': 1 }, b: { 'y ms': 2 } }]);
  assert.equal(worse[0].verdict, 'worse');
});
