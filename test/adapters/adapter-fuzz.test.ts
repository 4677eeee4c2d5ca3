/**
 * Fuzzing adapter_config.json parsing and whole adapter loads (seeded, bounded in time): random JSON values
 * in every field, fields dropped or added, raw-text damage to the config, and mutated weights files. Each
 * must end in a catalogue error (LoraplexError) or a loaded adapter — never a crash, a hang, another
 * exception, or a message that shows a server path.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadPackedAdapter } from '../../src/adapters/loader/load-packed.ts';
import { parsePeftAdapterConfig } from '../../src/adapters/peft/adapter-config.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { LoraplexError } from '../../src/observability/errors.ts';
import { mutateBytes, mutateSafetensors, randomJson } from '../model/safetensors-mutations.ts';
import { BASE, everyLayer, loraTensors, peftConfig, TempDirs } from './helpers.ts';

const SEED = 4_2026_12;
/** Fixed counts, not a time budget: the same seeded inputs on every machine, however loaded. */
const CONFIG_MUTATIONS = 1500;
const WHOLE_LOADS = 400;
const FILE = "adapter 'fz': adapter_config.json";

const dirs = new TempDirs();
after(() => dirs.cleanup());

function mutateConfig(rng: BenchRandom): string {
  const config: Record<string, unknown> = peftConfig({
    target_modules: ['q_proj', 'v_proj', 'down_proj'],
    rank_pattern: { q_proj: 2 },
    alpha_pattern: { 'model.layers.1.self_attn.v_proj': 4 },
  });
  const keys = [...Object.keys(config), 'use_dora', 'layers_pattern', 'exclude_modules', 'init_lora_weights', 'other'];
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const key = keys[rng.int(keys.length)];
    if (rng.int(5) === 0) delete config[key];
    else config[key] = randomJson(rng);
  }
  const text = JSON.stringify(config);
  return rng.int(4) === 0 ? Buffer.from(mutateBytes(rng, Buffer.from(text))).toString('utf8') : text;
}

function assertClean(e: unknown, what: string, dir = '/tmp/') {
  if (!(e instanceof LoraplexError))
    assert.fail(`${what}: ${String((e as Error)?.stack ?? e)} is not a catalogue error`);
  assert.ok(!e.message.includes(dir) && !e.message.includes('/tmp/'), `${what}: shows a server path: ${e.message}`);
  assert.ok(e.status >= 400 && e.status < 500, `${what}: status ${e.status}: ${e.message}`);
}

test('mutated adapter_config.json parses or fails with a catalogue error', () => {
  const rng = new BenchRandom(SEED);
  for (let n = 0; n < CONFIG_MUTATIONS; n++) {
    const text = mutateConfig(rng);
    try {
      parsePeftAdapterConfig(text, FILE);
    } catch (e) {
      assertClean(e, `config ${n} ${text.slice(0, 300)}`);
    }
  }
});

test('whole loads of mutated adapters load or fail with a catalogue error', async () => {
  const rng = new BenchRandom(SEED + 1);
  const tensors = loraTensors(everyLayer(['q_proj', 'v_proj', 'down_proj'], 4));
  const good = await dirs.adapter(peftConfig({ target_modules: ['q_proj', 'v_proj', 'down_proj'] }), tensors);
  const weights = new Uint8Array(await readFile(join(good, 'adapter_model.safetensors')));
  const dir = await dirs.make();
  const outcomes = { ok: 0, rejected: 0 };
  for (let n = 0; n < WHOLE_LOADS; n++) {
    const which = rng.int(3); // 0: config, 1: weights, 2: both
    const config =
      which === 1
        ? JSON.stringify(peftConfig({ target_modules: ['q_proj', 'v_proj', 'down_proj'] }))
        : mutateConfig(rng);
    await writeFile(join(dir, 'adapter_config.json'), config);
    await writeFile(join(dir, 'adapter_model.safetensors'), which === 0 ? weights : mutateSafetensors(rng, weights));
    try {
      await loadPackedAdapter('fz', dir, BASE, 16);
      outcomes.ok++;
    } catch (e) {
      assertClean(e, `load ${n} (${which})`, dir);
      outcomes.rejected++;
    }
  }
  assert.ok(outcomes.ok > 0 && outcomes.rejected > 0, JSON.stringify(outcomes));
});
