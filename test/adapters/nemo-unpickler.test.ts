/**
 * The restricted unpickler and the torch.save reader: files torch.save wrote (oracle/nemo_fixtures.py →
 * test/fixtures/nemo/pickle) read back to the same tensors and containers at pickle protocols 2, 4 and 5; a
 * pickle that names any other global is refused by name and runs nothing; truncated, damaged and hostile
 * pickles (huge lengths, bad memo, stray marks) end in a PickleError or FormatError, never another exception.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bufferSource, FormatError } from '../../src/adapters/formats/nemo/byte-source.ts';
import {
  PickleDict,
  PickleError,
  type PickleSet,
  type PickleTuple,
  type PickleValue,
  type StorageRef,
} from '../../src/adapters/formats/nemo/pickle-values.ts';
import { readTorchCheckpoint } from '../../src/adapters/formats/nemo/torch-checkpoint.ts';
import { unpickle } from '../../src/adapters/formats/nemo/unpickler.ts';
import { listZip, readZipEntry } from '../../src/adapters/formats/nemo/zip.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { mutateBytes } from '../model/safetensors-mutations.ts';
import { zip } from './nemo-writer.ts';

const DIR = join(
  process.env.LORAPLEX_NEMO_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'nemo'),
  'pickle',
);
const EXPECTED: Record<string, { shape: number[]; values: number[] }> = JSON.parse(
  readFileSync(join(DIR, 'expected.json'), 'utf8'),
);
const noStorages = {
  persistentLoad: (): StorageRef => {
    throw new PickleError('no storages here');
  },
};

async function dataPkl(file: string): Promise<Buffer> {
  const src = bufferSource(readFileSync(join(DIR, file)));
  const entries = await listZip(src);
  const name = [...entries.keys()].find((n) => n.endsWith('/data.pkl')) as string;
  return readZipEntry(src, entries.get(name)!);
}

/** A hand-written pickle: PROTO 2, the body, STOP. */
function pickle(...body: (number | string)[]): Uint8Array {
  const bytes: number[] = [0x80, 2];
  for (const part of body) {
    if (typeof part === 'number') bytes.push(part);
    else for (const c of Buffer.from(part, 'latin1')) bytes.push(c);
  }
  bytes.push(0x2e);
  return Uint8Array.from(bytes);
}

function refused(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof PickleError && pattern.test(e.message));
}

for (const protocol of [2, 4, 5]) {
  test(`torch.save state dict, pickle protocol ${protocol}: every tensor reads back with its shape and values`, async () => {
    const ckpt = await readTorchCheckpoint(bufferSource(readFileSync(join(DIR, `state-dict-protocol${protocol}.pt`))));
    assert.deepEqual([...ckpt.tensors.keys()].sort(), Object.keys(EXPECTED).sort());
    assert.equal(ckpt.others.size, 0, 'None (extra_state) is left out, and _metadata is not an entry');
    for (const [name, want] of Object.entries(EXPECTED)) {
      assert.deepEqual(ckpt.tensors.get(name)?.size, want.shape, name);
      assert.deepEqual([...(await ckpt.readF32(name))], want.values.map(Math.fround), name);
    }
    // The view and the slice point into storages they share with other tensors.
    assert.deepEqual(ckpt.tensors.get('transposed')?.stride, [1, 6]);
    assert.equal(ckpt.tensors.get('sliced')?.offset, 3);
    assert.equal(ckpt.tensors.get('sliced')?.storage, ckpt.tensors.get('whole')?.storage);
    assert.equal(ckpt.tensors.get('bf16')?.storage.dtype, 'bfloat16');
  });
}

for (const file of ['containers.pt', 'containers-protocol4.pt']) {
  test(`${file}: lists, tuples, sets, floats, big ints, text and bytes as Python pickled them`, async () => {
    const root = unpickle(await dataPkl(file), noStorages);
    assert.ok(root instanceof PickleDict);
    const get = (k: string) => root.entries.get(k) as PickleValue;
    assert.deepEqual(get('list'), [1, -2, 300, 70000, -(2 ** 40), 2n ** 70n]);
    assert.deepEqual((get('tuple') as PickleTuple).items, [true, false, null]);
    assert.deepEqual([...(get('set') as PickleSet).items].sort(), [1, 2, 3]);
    assert.equal(get('float'), 1.5);
    assert.equal(get('text'), 'héllo');
    assert.deepEqual([...(get('bytes') as Uint8Array)], [0, 1]);
    const nested = get('nested') as PickleDict;
    const inner = (nested.entries.get('k') as PickleValue[])[0] as PickleDict;
    assert.equal(inner.entries.get('deep'), 'x');
  });
}

test('a torch.save file whose pickle calls os.system is refused by name, and the command never runs', async () => {
  const marker = '/tmp/loraplex-pickle-ran'; // what the pickle's command would create
  rmSync(marker, { force: true });
  await assert.rejects(
    readTorchCheckpoint(bufferSource(readFileSync(join(DIR, 'runs-code.pt')))),
    (e: unknown) =>
      e instanceof PickleError && /'posix\.system'/.test(e.message) && /nothing in the file was run/.test(e.message),
  );
  assert.equal(existsSync(marker), false);
});

test('every global outside the allowed list is refused, through GLOBAL and STACK_GLOBAL alike', () => {
  for (const [module, name] of [
    ['builtins', 'eval'],
    ['builtins', 'getattr'],
    ['os', 'system'],
    ['subprocess', 'Popen'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_from_type_v2'],
    ['numpy.core.multiarray', '_reconstruct'],
    ['collections', 'defaultdict'],
  ]) {
    refused(() => unpickle(pickle(0x63, `${module}\n${name}\n`), noStorages), new RegExp(`'${module}\\.${name}'`));
    const stack = pickle(0x8c, module.length, module, 0x8c, name.length, name, 0x93);
    refused(() => unpickle(stack, noStorages), new RegExp(`'${module}\\.${name}'`));
  }
});

test('objects, extensions, out-of-band buffers and text protocols are refused', () => {
  refused(() => unpickle(pickle(0x29, 0x29, 0x81), noStorages), /NEWOBJ/);
  refused(() => unpickle(pickle(0x82, 1), noStorages), /extension/);
  refused(() => unpickle(pickle(0x97), noStorages), /out-of-band/);
  refused(() => unpickle(Uint8Array.from([0x28, 0x6c, 0x2e]), noStorages), /not a binary pickle/);
  refused(() => unpickle(Uint8Array.from([0x80, 6, 0x4e, 0x2e]), noStorages), /protocol 6/);
  refused(() => unpickle(pickle(0x49, '1\n'), noStorages), /protocol 0\/1 opcode/);
  // REDUCE on something that is not an allowed callable (a string, a storage class).
  refused(() => unpickle(pickle(0x8c, 1, 'x', 0x29, 0x52), noStorages), /not callable/);
  refused(() => unpickle(pickle(0x63, 'torch\nFloatStorage\n', 0x29, 0x52), noStorages), /not callable/);
});

test('hostile lengths, memo and stack use fail cleanly before anything large is allocated', () => {
  const u32 = (n: number) => String.fromCharCode(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24);
  refused(() => unpickle(pickle(0x58, u32(0xffffffff)), noStorages), /truncated/); // BINUNICODE 4 GiB
  refused(() => unpickle(pickle(0x8e, '\xff\xff\xff\xff\xff\xff\xff\x0f'), noStorages), /past the end/); // BINBYTES8
  refused(() => unpickle(pickle(0x8b, u32(1 << 30)), noStorages), /integer of/); // LONG4 of 1 GiB
  refused(() => unpickle(pickle(0x6a, u32(7)), noStorages), /memo entry 7/);
  refused(() => unpickle(pickle(0x30), noStorages), /empty stack/);
  refused(() => unpickle(pickle(0x74), noStorages), /MARK/);
  refused(() => unpickle(pickle(0x28), noStorages), /MARK/);
  refused(() => unpickle(pickle(0x4e, 0x4e), noStorages), /2 items on the stack/);
  refused(() => unpickle(pickle(0x5d, 0x5d, 0x29, 0x73), noStorages), /SETITEM on a list/);
  refused(() => unpickle(pickle(0x7d, 0x5d, 0x4e, 0x73), noStorages), /dict key that is a list/);
  refused(() => unpickle(pickle(0x8c, 2, '\xff\xfe'), noStorages), /UTF-8/);
  // A cycle (a list appended to itself) is built, not followed: the reader returns it.
  const cyclic = unpickle(pickle(0x5d, 0x71, 0, 0x68, 0, 0x61), noStorages) as PickleValue[];
  assert.equal(cyclic[0], cyclic);
});

/** A torch.save-shaped checkpoint by hand: {'w': tensor(size, stride, offset) on storage `key` of `numel` floats}. */
function tensorCheckpoint(o: {
  key: string;
  numel: number;
  offset: number;
  size: [number, number];
  stride: [number, number];
  bytes: number;
}) {
  const pkl = pickle(
    0x7d, // EMPTY_DICT
    0x8c,
    1,
    'w',
    0x63,
    'torch._utils\n_rebuild_tensor_v2\n',
    0x28, // MARK (the arguments)
    0x28,
    0x8c,
    7,
    'storage',
    0x63,
    'torch\nFloatStorage\n',
    0x8c,
    o.key.length,
    o.key,
    0x8c,
    3,
    'cpu',
    0x4b,
    o.numel,
    0x74,
    0x51, // BINPERSID
    0x4b,
    o.offset,
    0x4b,
    o.size[0],
    0x4b,
    o.size[1],
    0x86,
    0x4b,
    o.stride[0],
    0x4b,
    o.stride[1],
    0x86,
    0x89, // False
    0x63,
    'collections\nOrderedDict\n',
    0x29,
    0x52,
    0x74, // TUPLE
    0x52, // REDUCE
    0x73, // SETITEM
  );
  const data = new Uint8Array(o.bytes);
  new Float32Array(data.buffer).forEach((_, i, a) => {
    a[i] = i;
  });
  return bufferSource(
    zip([
      ['archive/data.pkl', pkl],
      ['archive/data/0', data],
    ]),
  );
}

test('a hand-built checkpoint reads; a missing storage, a size that disagrees and a view past the storage do not', async () => {
  const good = {
    key: '0',
    numel: 6,
    offset: 1,
    size: [2, 2] as [number, number],
    stride: [1, 2] as [number, number],
    bytes: 24,
  };
  const ckpt = await readTorchCheckpoint(tensorCheckpoint(good));
  assert.deepEqual([...(await ckpt.readF32('w'))], [1, 3, 2, 4], 'strided view [[1, 3], [2, 4]]');
  const fails = async (o: typeof good, pattern: RegExp) =>
    assert.rejects(
      readTorchCheckpoint(tensorCheckpoint(o)),
      (e: unknown) => e instanceof PickleError && pattern.test(e.message),
    );
  await fails({ ...good, key: '1' }, /no data\/1 in the archive/);
  await fails({ ...good, numel: 8 }, /holds 24 bytes, but 8 float32 elements take 32/);
  await fails({ ...good, offset: 3 }, /reaches element 6 of a storage of 6/);
  await fails({ ...good, stride: [3, 2] }, /reaches element 6/);
});

test('data.pkl cut at every length fails with a PickleError, never another exception', async () => {
  const pkl = await dataPkl('state-dict-protocol2.pt');
  for (let n = 0; n < pkl.length; n++) {
    assert.throws(
      () =>
        unpickle(pkl.subarray(0, n), {
          persistentLoad: () => ({ kind: 'storage', dtype: 'float32', key: '0', numel: 1 << 20 }),
        }),
      (e: unknown) => e instanceof PickleError,
      `cut at ${n}`,
    );
  }
});

test('seeded damage to data.pkl and to the zip ends in a value, a PickleError or a FormatError', async () => {
  const rng = new BenchRandom(2026_12_04);
  const file = readFileSync(join(DIR, 'state-dict-protocol4.pt'));
  const pkl = await dataPkl('state-dict-protocol4.pt');
  for (let i = 0; i < 600; i++) {
    const bytes = i % 2 === 0 ? mutateBytes(rng, file) : null;
    try {
      if (bytes) await readTorchCheckpoint(bufferSource(Buffer.from(bytes)));
      else {
        const damaged = mutateBytes(rng, pkl);
        unpickle(damaged, {
          persistentLoad: () => ({ kind: 'storage', dtype: 'float32', key: '0', numel: 64 }),
        });
      }
    } catch (e) {
      assert.ok(e instanceof PickleError || e instanceof FormatError, `mutation ${i}: ${(e as Error).stack}`);
    }
  }
});
