/**
 * The module graph of src/: no import cycles, and no import against the layers below. Every `import` and
 * `export … from` counts, static or dynamic (`import('…')`, type positions included): a type import is
 * still a dependency.
 *
 * Layers, lowest first. A module may import its own layer and the layers named beside it, nothing else.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const LAYERS: Record<string, string[]> = {
  // Node plumbing (worker threads running TypeScript).
  runtime: [],
  // Errors, logs, metrics: imported by every layer, so it imports none; a shape it reads is declared in it
  // (observability/serving-stats.ts), not imported from the engine or the server.
  observability: [],
  // The kernels' TypeScript face, the reference kernels and the native addon's loader (kernels/native).
  kernels: ['runtime', 'observability'],
  backends: ['kernels', 'runtime', 'observability'],
  model: ['kernels', 'backends', 'runtime', 'observability'],
  adapters: ['model', 'kernels', 'backends', 'runtime', 'observability'],
  // The Config type, defaults, validation: read by the engine and the server, so below both.
  config: ['adapters', 'model', 'kernels', 'backends', 'runtime', 'observability'],
  // engine/plan is part of the engine.
  engine: ['config', 'adapters', 'model', 'kernels', 'backends', 'runtime', 'observability'],
  tokenizer: ['config', 'model', 'runtime', 'observability'],
  server: ['engine', 'tokenizer', 'config', 'adapters', 'model', 'kernels', 'backends', 'runtime', 'observability'],
  // The HTTP load generator: measures a server from outside, never through engine internals.
  bench: ['tokenizer', 'runtime', 'observability'],
  // The synthetic demo model and adapters, for the cli.
  demo: ['engine', 'adapters', 'model', 'kernels', 'runtime', 'observability'],
  // The top: turns flags into a Config and starts the rest.
  cli: [
    'server',
    'bench',
    'demo',
    'engine',
    'tokenizer',
    'config',
    'adapters',
    'model',
    'kernels',
    'backends',
    'runtime',
    'observability',
  ],
};

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|mts|mjs|js)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Blanks comments (keeping line breaks) so an `import … from` written in a comment is not an edge. */
function withoutComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const SPECIFIERS = [
  /\b(?:import|export)\s[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1/g, // import x from, import type {…} from, export … from
  /\bimport\s*(['"])([^'"]+)\1/g, // import './side-effect'
  /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g, // import('…'), in code or in a type
];

/** Relative specifiers resolved to src-relative paths (packages and node: builtins are not edges). */
function importsOf(file: string): string[] {
  const text = withoutComments(readFileSync(file, 'utf8'));
  const found = new Set<string>();
  for (const pattern of SPECIFIERS) {
    for (const m of text.matchAll(pattern)) {
      if (m[2].startsWith('.')) found.add(relative(src, resolve(dirname(file), m[2])));
    }
  }
  return [...found];
}

const layerOf = (path: string) => path.split('/')[0];

const graph = new Map(sources(src).map((f) => [relative(src, f), importsOf(f)]));

test('every folder of src/ has a layer in the table', () => {
  const unknown = [...new Set([...graph.keys()].map(layerOf))].filter((l) => !(l in LAYERS));
  assert.deepEqual(
    unknown,
    [],
    `src/${unknown[0]}/ is in no layer: add it to LAYERS in this test and to docs/architecture.md`,
  );
});

test('every import resolves to a file in src/', () => {
  const missing = [...graph].flatMap(([from, tos]) =>
    tos.filter((to) => !graph.has(to)).map((to) => `${from} → ${to}`),
  );
  assert.deepEqual(missing, [], 'imports this test could not follow (a new file extension?)');
});

test('no import goes against the layers', () => {
  const broken: string[] = [];
  for (const [from, tos] of graph) {
    const a = layerOf(from);
    for (const to of tos) {
      const b = layerOf(to);
      if (a === b || LAYERS[a]?.includes(b) || !(a in LAYERS)) continue;
      broken.push(
        `src/${from} imports src/${to}: ${a} may import ${LAYERS[a].join(', ') || 'no other layer'}, not ${b} (layers: test/architecture/imports.test.ts).` +
          ` Move what it needs down to a layer ${a} may import (a small types file), or pass it in from above.`,
      );
    }
  }
  assert.deepEqual(broken, [], `\n${broken.join('\n')}`);
});

test('no import cycles', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  assert.deepEqual(
    cycles,
    [],
    `\n${cycles.join('\n')}\nCut each cycle by moving what both files need (a type, a function) into a small file both import.`,
  );
});
