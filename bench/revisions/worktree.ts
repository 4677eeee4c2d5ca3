/**
 * A checkout of one commit to benchmark: a detached git worktree under the cache, kept per commit so a second
 * run reuses it. node_modules is a symlink to the main checkout's when the lockfile matches (else `npm ci`);
 * the native addon is always built in the worktree from its own sources.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../../src/demo/demo-model.ts';

export interface Checkout {
  /** What the user asked for (`5c9bfdf`, `HEAD`, or `working tree`). */
  label: string;
  /** Full commit hash (the working tree's HEAD, with `dirty` if it has uncommitted changes). */
  sha: string;
  dirty: boolean;
  dir: string;
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** The main checkout as it stands (its own build/ and node_modules). */
export function workingTree(root: string): Checkout {
  return {
    label: 'working tree',
    sha: git(root, 'rev-parse', 'HEAD'),
    dirty: git(root, 'status', '--porcelain', '--untracked-files=no') !== '',
    dir: root,
  };
}

/** A worktree of `rev`, created, linked and built as needed; progress goes to stderr. */
export function ensureWorktree(root: string, rev: string): Checkout {
  const sha = git(root, 'rev-parse', '--verify', `${rev}^{commit}`);
  const dir = join(cacheRoot(), 'revisions', sha);
  if (!existsSync(join(dir, '.git'))) {
    console.error(`revisions: git worktree add --detach ${dir} ${sha}`);
    execFileSync('git', ['worktree', 'add', '--detach', dir, sha], { cwd: root, stdio: ['ignore', 2, 2] });
  }
  if (!existsSync(join(dir, 'node_modules'))) {
    const sameLock = git(root, 'diff', '--name-only', sha, 'HEAD', '--', 'package-lock.json') === '';
    if (sameLock) symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    else execFileSync('npm', ['ci', '--ignore-scripts'], { cwd: dir, stdio: ['ignore', 2, 2] });
  }
  if (!existsSync(join(dir, 'build', 'Release', 'loraplex_native.node'))) {
    console.error(`revisions: building the native addon of ${sha.slice(0, 7)} (minutes)`);
    execFileSync('flock', ['/tmp/native-build.lock', 'npx', 'cmake-js', 'compile', '--release', '--out', 'build'], {
      cwd: dir,
      stdio: ['ignore', 2, 2],
    });
  }
  return { label: rev, sha, dirty: false, dir };
}
