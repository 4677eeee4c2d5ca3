/**
 * Adapter loads fail closed: only regular files inside the adapter's root are read (FIFOs, devices and
 * symlinks out fail their own load at once), values are checked (finite weights, bounded magnitude and
 * scale), messages never quote file contents or show server paths, a load that never finishes times out
 * without wedging the loads after it, and load warnings reach the log and the adapter's info.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AdapterManager } from '../../src/adapters/cache/adapter-manager.ts';
import { InlineAdapterLoader } from '../../src/adapters/loader/adapter-loader.ts';
import { ThreadAdapterLoader } from '../../src/adapters/loader/loader-thread.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { LocalDirStore } from '../../src/adapters/store/local-dir-store.ts';
import { createBackend } from '../../src/backends/index.ts';
import { numModules } from '../../src/model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../../src/model/safetensors.ts';
import { LoraplexError } from '../../src/observability/errors.ts';
import { assertRejects, BASE, everyLayer, loraTensors, peftConfig, TempDirs, tensorName } from './helpers.ts';

const dirs = new TempDirs();
after(() => dirs.cleanup());
const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';
const QV = () => loraTensors(everyLayer(['q_proj', 'v_proj'], 4));
const load = (dir: string, root?: string) => loadPeftAdapter(dir, BASE, { maxLoraRank: 64, name: 'sql', root });
/** A FIFO read would block forever on the old code: the test's own timeout turns that into a failure. */
const BOUNDED = { timeout: 10_000 };

/** Asserts a rejection whose message holds none of `absent` (contents, server paths). */
async function rejectsWithout(run: () => Promise<unknown>, code: string, absent: string[], ...present: string[]) {
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof LoraplexError, `expected a LoraplexError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const a of absent) assert.ok(!e.message.includes(a), `message ${JSON.stringify(e.message)} shows ${a}`);
    for (const p of present) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${p}`);
    assert.doesNotMatch(e.message, /\/tmp\//, 'no server path in a message');
    return true;
  });
}

describe('adapter files: regular files only', () => {
  test('weights that are a FIFO fail at once with ADAPTER_WEIGHTS_INVALID', BOUNDED, async () => {
    const dir = await dirs.adapter(peftConfig());
    execFileSync('mkfifo', [join(dir, WEIGHTS)]);
    await rejectsWithout(() => load(dir), 'ADAPTER_WEIGHTS_INVALID', [dir], `adapter 'sql': ${WEIGHTS}`, 'FIFO');
  });

  test('a config that is a FIFO fails at once with ADAPTER_INVALID_CONFIG', BOUNDED, async () => {
    const dir = await dirs.make();
    await writeSafetensors(join(dir, WEIGHTS), QV());
    execFileSync('mkfifo', [join(dir, CONFIG)]);
    await rejectsWithout(() => load(dir), 'ADAPTER_INVALID_CONFIG', [dir], `adapter 'sql': ${CONFIG}`, 'FIFO');
  });

  test('a device linked in as weights is refused without being opened', BOUNDED, async () => {
    const dir = await dirs.adapter(peftConfig());
    await symlink('/dev/zero', join(dir, WEIGHTS));
    // /dev/zero lies outside the adapter: containment refuses it before the file type is even looked at.
    await rejectsWithout(() => load(dir), 'ADAPTER_FILE_OUTSIDE', ['/dev/zero']);
  });

  test('weights that are a directory', async () => {
    const dir = await dirs.adapter(peftConfig());
    await mkdir(join(dir, WEIGHTS));
    await rejectsWithout(() => load(dir), 'ADAPTER_WEIGHTS_INVALID', [dir], 'a directory, not a regular file');
  });
});

describe('adapter files: contained in their root', () => {
  const SECRET = 'root:x:0:0:hunter2-secret-line';

  test('a config symlinked to a file outside is never read, and neither its content nor its path is shown', async () => {
    const outside = await dirs.make();
    const secretFile = join(outside, 'passwd');
    await writeFile(secretFile, `${SECRET}\n`);
    const dir = await dirs.adapter(peftConfig(), QV());
    await rename(join(dir, CONFIG), join(dir, 'real.json'));
    await symlink(secretFile, join(dir, CONFIG));
    await rejectsWithout(
      () => load(dir),
      'ADAPTER_FILE_OUTSIDE',
      [SECRET, 'root:x', 'hunter2', secretFile, outside, dir],
      `adapter 'sql': ${CONFIG}`,
      'resolves outside the adapter directory',
    );
  });

  test('weights symlinked out of the store are refused; a link inside the store is followed', async () => {
    const store = await dirs.make();
    const outside = await dirs.make();
    await writeSafetensors(join(outside, 'w.safetensors'), QV());
    const dir = join(store, 'sql');
    await mkdir(dir);
    await writeFile(join(dir, CONFIG), JSON.stringify(peftConfig()));
    await symlink(join(outside, 'w.safetensors'), join(dir, WEIGHTS));
    await rejectsWithout(
      () => load(dir, store),
      'ADAPTER_FILE_OUTSIDE',
      [outside, store],
      `adapter 'sql': ${WEIGHTS}`,
      'the adapter store',
    );

    // Shared blobs elsewhere in the store are fine.
    const shared = join(store, '.blobs');
    await mkdir(shared);
    await writeSafetensors(join(shared, 'w.safetensors'), QV());
    const other = join(store, 'other');
    await mkdir(other);
    await writeFile(join(other, CONFIG), JSON.stringify(peftConfig()));
    await symlink(join(shared, 'w.safetensors'), join(other, WEIGHTS));
    assert.equal((await load(other, store)).rankMax, 4);
  });

  test('an adapter directory that is a symlinked subdirectory out of the store is refused', async () => {
    const store = await dirs.make();
    const outside = await dirs.adapter(peftConfig(), QV());
    await symlink(outside, join(store, 'sql'));
    await rejectsWithout(() => load(join(store, 'sql'), store), 'ADAPTER_FILE_OUTSIDE', [outside, store]);
  });

  test('--adapter dirs: files must stay inside the directory itself', async () => {
    const outside = await dirs.make();
    await writeSafetensors(join(outside, 'w.safetensors'), QV());
    const dir = await dirs.adapter(peftConfig());
    await symlink(join(outside, 'w.safetensors'), join(dir, WEIGHTS));
    await rejectsWithout(() => load(dir), 'ADAPTER_FILE_OUTSIDE', [outside], 'the adapter directory');
  });

  test('an invalid config quotes neither JSON.parse text nor a path', async () => {
    const dir = await dirs.adapter(`${SECRET}\n{"peft_type": "LORA"`, QV());
    await rejectsWithout(() => load(dir), 'ADAPTER_INVALID_CONFIG', [SECRET, 'root:x', dir], 'not valid JSON');
  });

  test("the store's not-found error names the flag, not the store's path", async () => {
    const root = await dirs.make();
    const store = await LocalDirStore.open(root);
    await rejectsWithout(() => store.find('nope'), 'ADAPTER_NOT_FOUND', [root], '--lora-dir');
  });

  test('a missing directory does not echo its path', async () => {
    await rejectsWithout(() => load('/nonexistent/secret/place'), 'ADAPTER_NOT_FOUND', ['/nonexistent'], "'sql'");
  });
});

describe('adapter values', () => {
  const poisoned = (value: number): TensorToWrite[] => {
    const tensors = QV();
    const data = tensors[3].data as Float32Array;
    data[2] = value;
    return tensors;
  };
  for (const [what, value] of [
    ['NaN', Number.NaN],
    ['+Inf', Number.POSITIVE_INFINITY],
    ['-Inf', Number.NEGATIVE_INFINITY],
    ['1e30', 1e30],
  ] as const) {
    test(`a ${what} weight is refused at load, naming the tensor`, async () => {
      const dir = await dirs.adapter(peftConfig(), poisoned(value));
      await rejectsWithout(
        () => load(dir),
        'ADAPTER_WEIGHTS_INVALID',
        [dir],
        `tensor '${tensorName(0, 'v_proj', 'lora_B')}'`,
        'finite',
      );
    });
  }

  test('65504 (the largest f16) is accepted', async () => {
    const dir = await dirs.adapter(peftConfig(), poisoned(-65504));
    await load(dir);
  });

  test('lora_alpha 1e300 is refused at load, naming lora_alpha', async () => {
    const dir = await dirs.adapter(peftConfig({ lora_alpha: 1e300 }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_INVALID_CONFIG', `${CONFIG}: lora_alpha:`, 'scale', '1024');
  });

  test('a huge alpha_pattern entry is refused, naming the pattern', async () => {
    const dir = await dirs.adapter(peftConfig({ alpha_pattern: { q_proj: 1e6 } }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_INVALID_CONFIG', 'alpha_pattern["q_proj"]');
  });

  test('rsLoRA scales alpha/√r: 2048 at r=4 is 1024, accepted; alpha/r would not matter', async () => {
    const dir = await dirs.adapter(peftConfig({ lora_alpha: 2048, use_rslora: true }), QV());
    await load(dir);
    const over = await dirs.adapter(peftConfig({ lora_alpha: 2050, use_rslora: true }), QV());
    await assertRejects(() => load(over), 'ADAPTER_INVALID_CONFIG', 'use_rslora');
  });
});

describe('adapter load timeout', () => {
  test('a load that never finishes times out, its thread is replaced, and loads after it still work', async () => {
    const good = await dirs.adapter(peftConfig(), QV());
    const loader = new ThreadAdapterLoader({
      base: BASE,
      maxLoraRank: 64,
      loadTimeoutSeconds: 1,
      neverFinishForTest: 'stuck',
    });
    try {
      const stuck = loader.load('stuck', good);
      const behind = loader.load('good', good);
      await assert.rejects(stuck, (e: unknown) => {
        assert.ok(e instanceof LoraplexError && e.code === 'ADAPTER_LOAD_TIMEOUT', String(e));
        assert.equal(e.status, 504);
        assert.match(e.message, /adapter 'stuck': loading did not finish within 1 s/);
        return true;
      });
      assert.equal((await behind).summary.rank, 4, 'the load queued behind the stuck one');
      assert.equal(loader.restarts, 1);
      assert.equal((await loader.load('again', good)).summary.rank, 4, 'and a later one');
    } finally {
      await loader.close();
    }
  });
});

describe('adapter warnings', () => {
  test('are logged once per version and listed in the adapter info', async () => {
    const dir = await dirs.adapter(peftConfig({ fan_in_fan_out: true, rank_pattern: { 'nothing.matches': 2 } }), QV());
    const logged: string[] = [];
    const manager = new AdapterManager({
      backend: createBackend('reference'),
      numModules: numModules(BASE),
      loraDtype: 'f32',
      maxLoras: 1,
      maxCpuLoras: 1,
      loader: new InlineAdapterLoader(BASE, 64),
      log: { warn: (msg) => logged.push(msg) },
    });
    const info = await manager.register('sql', dir, 'static');
    assert.equal(info.warnings.length, 2, JSON.stringify(info.warnings));
    assert.match(info.warnings[0], /^adapter 'sql': adapter_config.json: fan_in_fan_out is true/);
    assert.match(info.warnings[1], /rank_pattern key "nothing.matches" matches no targeted module/);
    assert.deepEqual(logged, info.warnings);
    assert.deepEqual(manager.list()[0].warnings, info.warnings);
    for (const w of info.warnings) assert.ok(!w.includes(dir) && !w.includes(basename(dir)), w);
  });
});
