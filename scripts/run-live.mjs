#!/usr/bin/env node
// Runs the live checks (test/live/*.live.ts) that need data made by the oracle, e.g. SmolLM2-135M.
// They are not part of `npm test` because the oracle's Python environment must run first (.ci/run does).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv.slice(2);
const files = readdirSync(join(root, 'test', 'live'))
  .filter((f) => f.endsWith('.live.ts') && (filter.length === 0 || filter.some((p) => f.includes(p))))
  .map((f) => join('test', 'live', f));
if (files.length === 0) {
  console.error('run-live: no live check matched');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  encoding: 'utf8',
});
process.stdout.write(result.stdout);
const passed = Number(/^ℹ pass (\d+)/m.exec(result.stdout)?.[1] ?? 0);
const failed = Number(/^ℹ fail (\d+)/m.exec(result.stdout)?.[1] ?? 0);
if (result.status === 0 && passed === 0) {
  console.error('run-live: no check ran');
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(result.status ?? 1);
