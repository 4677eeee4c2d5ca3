/**
 * ThreadAdapterLoader: the same loads as InlineAdapterLoader, on a worker thread. Real PEFT adapters (the
 * demo's, written to a temporary directory) come back with the same packed weights; broken ones come back
 * as LoraplexErrors with the inline loader's code, status and message.
 */

import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packedBytes } from '../../src/adapters/cache/host-cache.ts';
import { InlineAdapterLoader } from '../../src/adapters/loader/adapter-loader.ts';
import type { PackedWithSummary } from '../../src/adapters/loader/load-packed.ts';
import { ThreadAdapterLoader } from '../../src/adapters/loader/loader-thread.ts';
import { DEMO_ADAPTERS, type DemoPaths, ensureDemo } from '../../src/demo/demo-model.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { readModelConfig } from '../../src/model/model-dir.ts';
import { MODULE_KINDS, numModules } from '../../src/model/modules.ts';
import { type ErrorCode, LoraplexError } from '../../src/observability/errors.ts';

const MAX_RANK = 32; // the largest demo adapter's rank

let root: string;
let demo: DemoPaths;
let base: ModelConfig;
let inline: InlineAdapterLoader;
let thread: ThreadAdapterLoader;
const broken: Record<'badJson' | 'truncated' | 'pickleOnly' | 'missing', string> = {
  badJson: '',
  truncated: '',
  pickleOnly: '',
  missing: '',
};

const dirOf = (name: string) => demo.adapters.find((a) => a.name === name)!.dir;

/** A copy of the demo-pirate adapter with `change` applied. */
async function brokenCopy(name: string, change: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(root, 'broken', name);
  await mkdir(dir, { recursive: true });
  for (const file of ['adapter_config.json', 'adapter_model.safetensors'])
    await copyFile(join(dirOf('demo-pirate'), file), join(dir, file));
  await change(dir);
  return dir;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'loraplex-loader-'));
  demo = await ensureDemo(root);
  base = await readModelConfig(demo.modelDir);
  inline = new InlineAdapterLoader(base, MAX_RANK);
  thread = new ThreadAdapterLoader({ base, maxLoraRank: MAX_RANK });

  broken.badJson = await brokenCopy('bad-json', (dir) => writeFile(join(dir, 'adapter_config.json'), '{"r": 8, '));
  broken.truncated = await brokenCopy('truncated', async (dir) => {
    const file = join(dir, 'adapter_model.safetensors');
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, 40)); // the 8-byte length, then part of the JSON header
  });
  broken.pickleOnly = await brokenCopy('pickle-only', async (dir) => {
    await rm(join(dir, 'adapter_model.safetensors'));
    await writeFile(join(dir, 'adapter_model.bin'), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e])); // a pickle
  });
  broken.missing = join(root, 'broken', 'does-not-exist');
});

after(async () => {
  await thread?.close();
  await rm(root, { recursive: true, force: true });
});

/** The error a load rejects with, or a failure when it resolves. */
async function rejection(load: Promise<PackedWithSummary>): Promise<LoraplexError> {
  try {
    await load;
  } catch (e) {
    assert.ok(e instanceof LoraplexError, `expected a LoraplexError, got ${String(e)}`);
    return e;
  }
  assert.fail('the load resolved');
}

const errorFields = (e: LoraplexError) => ({ code: e.code, status: e.status, type: e.type, message: e.message });

/** What has happened to `p` so far, updated as it settles (read it once the event loop has turned). */
function watch(p: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected' } {
  const seen = { state: 'pending' as 'pending' | 'resolved' | 'rejected' };
  p.then(
    () => {
      seen.state = 'resolved';
    },
    () => {
      seen.state = 'rejected';
    },
  );
  return seen;
}

describe('ThreadAdapterLoader: good adapters', () => {
  for (const spec of DEMO_ADAPTERS) {
    test(`${spec.name} loads on the thread exactly as inline`, async () => {
      const dir = dirOf(spec.name);
      const [fromThread, fromInline] = await Promise.all([thread.load(spec.name, dir), inline.load(spec.name, dir)]);
      assert.deepEqual(fromThread, fromInline);

      const { packed, summary } = fromThread;
      assert.ok(packed.weights instanceof Float32Array);
      assert.ok(packed.rank instanceof Int32Array);
      assert.equal(summary.rank, spec.r);
      assert.deepEqual(summary.targets, spec.targets);
      assert.equal(summary.sizeBytes, packedBytes(packed));
      const scale = spec.rslora ? spec.alpha / Math.sqrt(spec.r) : spec.alpha / spec.r;
      assert.equal(packed.rank.length, numModules(base));
      for (let m = 0; m < packed.rank.length; m++) {
        const targeted = spec.targets.includes(MODULE_KINDS[m % MODULE_KINDS.length]);
        assert.equal(packed.rank[m], targeted ? spec.r : 0, `rank of module ${m}`);
        assert.equal(packed.scale[m], targeted ? Math.fround(scale) : 0, `scale of module ${m}`);
      }
      assert.ok(packed.weights.some((w) => w !== 0));
    });
  }

  test('several loads in flight at once all resolve, each with its own adapter', async () => {
    const fromThread = await Promise.all(DEMO_ADAPTERS.map((a) => thread.load(a.name, dirOf(a.name))));
    for (const [i, spec] of DEMO_ADAPTERS.entries()) {
      assert.equal(fromThread[i].summary.rank, spec.r, spec.name);
      assert.deepEqual(fromThread[i], await inline.load(spec.name, dirOf(spec.name)), spec.name);
    }
  });

  test('a broken load between good ones fails alone', async () => {
    const loads = [
      thread.load('demo-chef', dirOf('demo-chef')),
      thread.load('bad', broken.badJson),
      thread.load('demo-pirate', dirOf('demo-pirate')),
    ];
    const [chef, bad, pirate] = await Promise.allSettled(loads);
    assert.equal(chef.status, 'fulfilled');
    assert.equal(bad.status, 'rejected');
    assert.equal(pirate.status, 'fulfilled');
    if (chef.status === 'fulfilled') assert.equal(chef.value.summary.rank, 4);
    if (pirate.status === 'fulfilled') assert.equal(pirate.value.summary.rank, 8);
  });
});

describe('ThreadAdapterLoader: broken adapters reject like the inline loader', () => {
  const cases: [string, keyof typeof broken, ErrorCode][] = [
    ['adapter_config.json that is not JSON', 'badJson', 'ADAPTER_INVALID_CONFIG'],
    ['a truncated safetensors header', 'truncated', 'ADAPTER_WEIGHTS_INVALID'],
    ['only a pickle adapter_model.bin', 'pickleOnly', 'ADAPTER_PICKLE_REFUSED'],
    ['a directory that does not exist', 'missing', 'ADAPTER_NOT_FOUND'],
  ];
  for (const [what, which, code] of cases) {
    test(`${what}: ${code}`, async () => {
      const dir = broken[which];
      const fromThread = await rejection(thread.load('broken', dir));
      const fromInline = await rejection(inline.load('broken', dir));
      assert.equal(fromInline.code, code, fromInline.message);
      assert.deepEqual(errorFields(fromThread), errorFields(fromInline));
    });
  }

  test('the rank limit travels to the thread', async () => {
    const strict = new ThreadAdapterLoader({ base, maxLoraRank: 16 });
    try {
      const fromThread = await rejection(strict.load('demo-robot', dirOf('demo-robot')));
      const fromInline = await rejection(new InlineAdapterLoader(base, 16).load('demo-robot', dirOf('demo-robot')));
      assert.equal(fromThread.code, 'ADAPTER_RANK_TOO_HIGH');
      assert.deepEqual(errorFields(fromThread), errorFields(fromInline));
      assert.equal((await strict.load('demo-poet', dirOf('demo-poet'))).summary.rank, 16, 'rank 16 still fits');
    } finally {
      await strict.close();
    }
  });
});

describe('ThreadAdapterLoader: close', () => {
  test('close() terminates the thread', async () => {
    const loader = new ThreadAdapterLoader({ base, maxLoraRank: MAX_RANK });
    assert.equal((await loader.load('demo-chef', dirOf('demo-chef'))).summary.rank, 4);
    await loader.close();
  });

  test('a load the thread is running when close() is called rejects, and so does a load after it', async () => {
    let started!: (name: string) => void;
    const running = new Promise<string>((resolve) => {
      started = resolve;
    });
    // The load never finishes on its own: only close() can settle it.
    const loader = new ThreadAdapterLoader({
      base,
      maxLoraRank: MAX_RANK,
      neverFinishForTest: 'demo-robot',
      onLoadStartedForTest: (name) => started(name),
    });
    const inFlight = watch(loader.load('demo-robot', dirOf('demo-robot')));
    assert.equal(await running, 'demo-robot', 'the thread has the load');
    await loader.close();
    const later = watch(loader.load('demo-chef', dirOf('demo-chef')));
    await new Promise(setImmediate); // handlers of promises settled by now have run
    assert.deepEqual(
      { inFlight: inFlight.state, later: later.state },
      { inFlight: 'rejected', later: 'rejected' },
      'a load on a closed loader never settles: whoever awaits it waits forever',
    );
  });
});
