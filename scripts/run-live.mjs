#!/usr/bin/env node
// Runs the live checks (test/live/*.live.ts) that need data made by the oracle, e.g. SmolLM2-135M.
// They are not part of `npm test` because the oracle's Python environment must run first (.ci/run does).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runNodeTests } from './node-test.mjs';

const root = new URL('..', import.meta.url).pathname;
const filter = process.argv.slice(2);
const files = readdirSync(join(root, 'test', 'live'))
  .filter((f) => f.endsWith('.live.ts') && (filter.length === 0 || filter.some((p) => f.includes(p))))
  .map((f) => join('test', 'live', f));
process.exit(runNodeTests(root, files, 'run-live'));
