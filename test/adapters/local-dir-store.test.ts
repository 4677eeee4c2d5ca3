/** The directory store: names come from its listing only; paths and symlinks never lead outside it. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LocalDirStore } from '../../src/adapters/store/local-dir-store.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';

let root: string;
let store: LocalDirStore;

async function adapterDir(dir: string) {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'adapter_config.json'), '{}');
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-store-'));
  await adapterDir(join(root, 'store', 'sql'));
  await adapterDir(join(root, 'store', 'chat-v2'));
  await mkdir(join(root, 'store', 'empty'));
  await adapterDir(join(root, 'outside'));
  await symlink(join(root, 'outside'), join(root, 'store', 'escape'));
  await symlink(join(root, 'store', 'sql'), join(root, 'store', 'alias'));
  await mkdir(join(root, 'store', 'cfglink'));
  await symlink(join(root, 'outside', 'adapter_config.json'), join(root, 'store', 'cfglink', 'adapter_config.json'));
  store = await LocalDirStore.open(join(root, 'store'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('lists the sub-folders holding an adapter, by folder name', async () => {
  const names = (await store.list()).map((a) => a.name);
  assert.deepEqual(names, ['alias', 'chat-v2', 'sql']);
});

test('symlinks that lead out of the store are refused (folders and files)', async () => {
  const names = (await store.list()).map((a) => a.name);
  assert.ok(!names.includes('escape'));
  assert.ok(!names.includes('cfglink'));
  await assert.rejects(store.find('escape'), (e) => isLoraplexError(e, 'ADAPTER_NOT_FOUND'));
});

test('a folder left out for a link out is reported to the operator, once per folder and reason', async () => {
  const skipped: string[] = [];
  const reporting = await LocalDirStore.open(join(root, 'store'), {
    onSkip: (name, reason) => skipped.push(`${name}: ${reason}`),
  });
  await reporting.list();
  await reporting.list();
  assert.deepEqual(skipped, [
    'cfglink: its adapter_config.json resolves outside the store',
    'escape: it resolves outside the store (a symlink out)',
  ]);
  for (const line of skipped) assert.ok(!line.includes(root), 'no server paths');
});

test('path-like names are not found: .., absolute, encoded, nested', async () => {
  for (const name of [
    '..',
    '../outside',
    '/etc',
    join(root, 'outside'),
    '%2e%2e',
    '..%2foutside',
    'sql/../..',
    'store/sql',
    '',
  ]) {
    await assert.rejects(
      store.find(name),
      (e) => isLoraplexError(e, 'ADAPTER_NOT_FOUND') && (e as { status: number }).status === 404,
      name,
    );
  }
});

test('a listed name resolves to its real directory inside the store', async () => {
  const sql = await store.find('sql');
  assert.equal(sql.dir, join(root, 'store', 'sql'));
});

test('a missing store is a clear error', async () => {
  await assert.rejects(LocalDirStore.open(join(root, 'nope')), /does not exist/);
});
