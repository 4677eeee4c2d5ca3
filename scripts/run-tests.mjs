#!/usr/bin/env node
// Runs every test/**/*.test.ts through node:test with tsx. Node 20 does not expand globs and a
// run that finds no file passes silently, so the list is built here and an empty run fails.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv.slice(2);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

let files = collect(join(root, 'test'));
if (filter.length > 0) files = files.filter((f) => filter.some((p) => f.includes(p)));
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 30 },
);
process.stdout.write(result.stdout);
const passed = Number(/^ℹ pass (\d+)/m.exec(result.stdout)?.[1] ?? 0);
const failed = Number(/^ℹ fail (\d+)/m.exec(result.stdout)?.[1] ?? 0);
if (result.status === 0 && passed === 0) {
  console.error('run-tests: the runner executed no test');
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(result.status ?? 1);
