/**
 * The CUDA backend's build is optional: where nvcc is found at install, the addon is built and loads; without a
 * GPU it says so (and the conformance suites skip CUDA with that reason) instead of failing late.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { createBackend, cudaAvailability } from '../../src/backends/index.ts';

const root = new URL('../..', import.meta.url).pathname;
const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' }).status === 0;

test('with nvcc on PATH the CUDA addon and the check/bench programs are built', { skip: !nvcc && 'no nvcc' }, () => {
  for (const f of ['build/cuda/loraplex_cuda.node', 'build/cuda/loraplex-cuda-check', 'build/cuda/loraplex-cuda-bench'])
    assert.ok(existsSync(root + f), `${f} was not built`);
});

test('cudaAvailability: ready with a device, else a reason and no crash', () => {
  const a = cudaAvailability();
  if (a.ok) {
    assert.match(a.device.name, /\S/);
    assert.ok(a.device.multiprocessors > 0);
  } else {
    assert.match(a.reason, /CUDA addon is not built|no usable CUDA device/);
    assert.throws(() => createBackend('cuda'), /the CUDA backend cannot run here/);
  }
});

test('the check program exits 2 (nothing to check) without a device', { skip: !nvcc && 'no nvcc' }, () => {
  if (cudaAvailability().ok) return;
  const r = spawnSync(`${root}build/cuda/loraplex-cuda-check`, [], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /no CUDA device/);
});
