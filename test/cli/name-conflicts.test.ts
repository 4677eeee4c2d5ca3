/**
 * Names that would mean two things, at `serve`'s start: an --adapter named like the base is refused; a store
 * folder named like the base, or like an --adapter, is warned about (the base's name means the base, and the
 * --adapter wins); the store's names come from its listing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameConflicts, storeNames } from '../../src/cli/name-conflicts.ts';

test("an --adapter with the base's name is refused, naming the fix", () => {
  const { error } = nameConflicts('llama', ['llama', 'pirate'], []);
  assert.match(error ?? '', /--adapter 'llama' has the base model's name.*--served-model-name/);
});

test('store folders named like the base or an --adapter are warned about; distinct names pass silently', () => {
  const { error, warnings } = nameConflicts('llama', ['pirate'], ['llama', 'pirate', 'poet']);
  assert.equal(error, null);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /folder 'llama' has the base model's name and is not served/);
  assert.match(warnings[1], /--adapter 'pirate' hides the --lora-dir folder/);
  assert.deepEqual(nameConflicts('llama', ['pirate'], ['poet']), { error: null, warnings: [] });
});

test('storeNames lists the adapter folders of a store; none without one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'loraplex-names-'));
  try {
    await mkdir(join(dir, 'poet'));
    await writeFile(join(dir, 'poet', 'adapter_config.json'), '{}');
    await mkdir(join(dir, 'not-an-adapter'));
    assert.deepEqual(await storeNames(dir), ['poet']);
    assert.deepEqual(await storeNames(null), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
