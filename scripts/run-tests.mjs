#!/usr/bin/env node
// Runs every test/**/*.test.ts (optionally only paths containing one of the arguments). Node 20 does not
// expand globs, so the list is built here.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runNodeTests } from './node-test.mjs';

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
process.exit(runNodeTests(root, files, 'run-tests'));
