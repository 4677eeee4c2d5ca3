// Runs test files with node:test through tsx and prints the closing 'N passed, N failed' line.
// A run that executed no test fails: Node 20's runner passes silently when it finds nothing.
import { spawnSync } from 'node:child_process';

export function runNodeTests(root, files, label) {
  if (files.length === 0) {
    console.error(`${label}: no test files found`);
    return 1;
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
    console.error(`${label}: the runner executed no test`);
    return 1;
  }
  console.log(`${passed} passed, ${failed} failed`);
  return result.status ?? 1;
}
