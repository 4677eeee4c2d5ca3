/**
 * Fuzzing the safetensors reader (seeded, bounded in time): every mutation of a valid file ends in a
 * SafetensorsError or in tensors that read back — never a crash, a hang, another exception, or a message
 * that shows the server path it was opened from.
 */
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BenchRandom } from '../../src/bench/random.ts';
import { SafetensorsError, SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { mutateSafetensors } from './safetensors-mutations.ts';

const SEED = 8_2026_12;
const MUTATIONS = 1500;
const BUDGET_MS = 3000;

let dir = '';
after(() => rm(dir, { recursive: true, force: true }));

test('mutated safetensors files end in a SafetensorsError or a clean read', async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraplex-st-fuzz-'));
  const valid = join(dir, 'valid.safetensors');
  await writeSafetensors(
    valid,
    [
      { name: 'a.lora_A.weight', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'a.lora_B.weight', dtype: 'BF16', shape: [3, 2], data: Uint16Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'b.lora_A.weight', dtype: 'F16', shape: [1, 4], data: Uint16Array.from([9, 8, 7, 6]) },
      { name: 'ids', dtype: 'I32', shape: [2], data: Int32Array.from([1, 2]) },
    ],
    { format: 'pt' },
  );
  const original = new Uint8Array(await readFile(valid));
  const rng = new BenchRandom(SEED);
  const file = join(dir, 'mutant.safetensors');
  const started = performance.now();
  const outcomes = { ok: 0, rejected: 0 };
  for (let i = 0; i < MUTATIONS && performance.now() - started < BUDGET_MS; i++) {
    const mutant = mutateSafetensors(rng, original);
    await writeFile(file, mutant);
    const fh = await open(file, 'r');
    try {
      const st = await SafetensorsFile.fromHandle(fh, 'w.safetensors');
      for (const t of st.tensors.values()) {
        if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') await st.readF32(t.name);
        else await st.readBytes(t.name);
      }
      outcomes.ok++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) {
        assert.fail(
          `mutation ${i}: ${String(e)} is not a SafetensorsError (${Buffer.from(mutant).subarray(0, 200).toString('latin1')})`,
        );
      }
      assert.ok(e.message.startsWith('w.safetensors: '), e.message);
      assert.ok(!e.message.includes(dir), `mutation ${i}: the message shows a server path: ${e.message}`);
      assert.ok(e.message.length < 2000, `mutation ${i}: a ${e.message.length}-character message`);
      outcomes.rejected++;
    } finally {
      await fh.close();
    }
  }
  assert.ok(outcomes.rejected > 0 && outcomes.ok > 0, JSON.stringify(outcomes));
});

test('SafetensorsFile.open refuses what is not a regular file, at once', async () => {
  await assert.rejects(SafetensorsFile.open(tmpdir()), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError && /a directory, not a regular file/.test(e.message), String(e));
    return true;
  });
});
