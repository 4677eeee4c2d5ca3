import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import { moduleIndex, moduleShape } from '../../src/model/modules.ts';
import { ALL_KINDS, BASE, everyLayer, factorValues, loraTensors, peftConfig, TempDirs } from './helpers.ts';

const dirs = new TempDirs();
after(() => dirs.cleanup());
const load = (dir: string, maxLoraRank = 64) => loadPeftAdapter(dir, BASE, { maxLoraRank });

describe('loadPeftAdapter: accepted adapters', () => {
  test('maps every lora_A / lora_B to its module with data, rank and alpha/r scale', async () => {
    const dir = await dirs.adapter(
      peftConfig({ r: 4, lora_alpha: 8 }),
      loraTensors(everyLayer(['q_proj', 'v_proj'], 4)),
    );
    const adapter = await load(dir);
    assert.equal(adapter.name, basename(dir));
    assert.equal(adapter.rankMax, 4);
    assert.deepEqual(adapter.targets, ['q_proj', 'v_proj']);
    assert.equal(adapter.modules.size, 6);
    assert.equal(adapter.config.baseModelNameOrPath, 'tiny/llama');
    assert.equal(adapter.config.taskType, 'CAUSAL_LM');
    const q1 = adapter.modules.get(moduleIndex(1, 'q_proj'))!;
    const { inFeatures, outFeatures } = moduleShape(BASE, 'q_proj');
    assert.equal(q1.kind, 'q_proj');
    assert.equal(q1.layer, 1);
    assert.equal(q1.rank, 4);
    assert.equal(q1.scale, 2);
    assert.deepEqual(q1.a, factorValues(1, 'q_proj', 'lora_A', 4 * inFeatures));
    assert.deepEqual(q1.b, factorValues(1, 'q_proj', 'lora_B', outFeatures * 4));
    const v = moduleShape(BASE, 'v_proj');
    assert.equal(adapter.sizeBytes, 3 * 4 * 4 * (inFeatures + outFeatures + v.inFeatures + v.outFeatures));
    assert.deepEqual(adapter.warnings, []);
  });

  test('takes the name from options when given', async () => {
    const dir = await dirs.adapter(peftConfig(), loraTensors(everyLayer(['q_proj', 'v_proj'], 4)));
    assert.equal((await loadPeftAdapter(dir, BASE, { maxLoraRank: 8, name: 'sql' })).name, 'sql');
  });

  test('rsLoRA scales by alpha/√r', async () => {
    const dir = await dirs.adapter(
      peftConfig({ r: 16, lora_alpha: 8, use_rslora: true }),
      loraTensors(everyLayer(['q_proj', 'v_proj'], 16)),
    );
    const adapter = await load(dir);
    for (const m of adapter.modules.values()) assert.equal(m.scale, 2);
  });

  test('rank_pattern and alpha_pattern give per-module ranks and scales, matched like PEFT', async () => {
    const config = peftConfig({
      r: 4,
      lora_alpha: 8,
      target_modules: ALL_KINDS,
      rank_pattern: { q_proj: 2, 'mlp.down_proj': 8, 'model.layers.1.mlp.up_proj': 6 },
      alpha_pattern: { o_proj: 3, 'layers.0.self_attn.k_proj': 20 },
    });
    const rankOf = (layer: number, kind: string) =>
      kind === 'q_proj' ? 2 : kind === 'down_proj' ? 8 : layer === 1 && kind === 'up_proj' ? 6 : 4;
    const specs = everyLayer(ALL_KINDS, 0).map((s) => ({ ...s, rank: rankOf(s.layer, s.kind) }));
    const adapter = await load(await dirs.adapter(config, loraTensors(specs)));
    const get = (layer: number, kind: (typeof ALL_KINDS)[number]) => adapter.modules.get(moduleIndex(layer, kind))!;
    assert.equal(adapter.rankMax, 8);
    assert.equal(get(0, 'q_proj').rank, 2);
    assert.equal(get(0, 'q_proj').scale, 4);
    assert.equal(get(2, 'down_proj').scale, 1);
    assert.equal(get(1, 'up_proj').rank, 6);
    assert.equal(get(1, 'up_proj').scale, 8 / 6);
    assert.equal(get(0, 'up_proj').rank, 4);
    assert.equal(get(1, 'o_proj').scale, 3 / 4);
    assert.equal(get(0, 'k_proj').scale, 5);
    assert.equal(get(1, 'k_proj').scale, 2);
  });

  test('rank_pattern with rsLoRA uses each module its own rank', async () => {
    const config = peftConfig({
      r: 4,
      lora_alpha: 8,
      use_rslora: true,
      target_modules: ['q_proj'],
      rank_pattern: { 'layers.2.self_attn.q_proj': 16 },
    });
    const specs = everyLayer(['q_proj'], 4).map((s) => (s.layer === 2 ? { ...s, rank: 16 } : s));
    const adapter = await load(await dirs.adapter(config, loraTensors(specs)));
    assert.equal(adapter.modules.get(moduleIndex(0, 'q_proj'))!.scale, 4);
    assert.equal(adapter.modules.get(moduleIndex(2, 'q_proj'))!.scale, 2);
  });

  test('a regex target_modules selects exactly its full matches', async () => {
    const config = peftConfig({
      target_modules: '.*\\.layers\\.0\\.self_attn\\.(k_proj|o_proj)|.*\\.layers\\.1\\.mlp\\.down_proj',
    });
    const specs = [
      { layer: 0, kind: 'k_proj' as const, rank: 4 },
      { layer: 0, kind: 'o_proj' as const, rank: 4 },
      { layer: 1, kind: 'down_proj' as const, rank: 4 },
    ];
    const adapter = await load(await dirs.adapter(config, loraTensors(specs)));
    assert.deepEqual(
      [...adapter.modules.keys()].sort((a, b) => a - b),
      [moduleIndex(0, 'k_proj'), moduleIndex(0, 'o_proj'), moduleIndex(1, 'down_proj')],
    );
    assert.deepEqual(adapter.targets, ['k_proj', 'o_proj', 'down_proj']);
  });

  test('"all-linear" expects all seven projections in every layer', async () => {
    const adapter = await load(
      await dirs.adapter(peftConfig({ target_modules: 'all-linear' }), loraTensors(everyLayer(ALL_KINDS, 4))),
    );
    assert.equal(adapter.modules.size, 7 * BASE.numLayers);
    assert.deepEqual(adapter.targets, ALL_KINDS);
  });

  test('layers_to_transform limits the layers (list with layers_pattern, or a single int)', async () => {
    const only = (layer: number) => everyLayer(['q_proj', 'v_proj'], 4).filter((s) => s.layer === layer);
    const a = await load(
      await dirs.adapter(peftConfig({ layers_to_transform: [1], layers_pattern: 'layers' }), loraTensors(only(1))),
    );
    assert.deepEqual(
      [...a.modules.values()].map((m) => m.layer),
      [1, 1],
    );
    const b = await load(await dirs.adapter(peftConfig({ layers_to_transform: 2 }), loraTensors(only(2))));
    assert.deepEqual(
      [...b.modules.values()].map((m) => m.layer),
      [2, 2],
    );
  });

  for (const [dtype, encode, decode] of [
    ['F16', f32ToF16, f16ToF32],
    ['BF16', f32ToBf16, bf16ToF32],
  ] as const) {
    test(`${dtype} factors are converted to f32`, async () => {
      const dir = await dirs.adapter(peftConfig(), loraTensors(everyLayer(['q_proj', 'v_proj'], 4), { dtype }));
      const m = (await load(dir)).modules.get(moduleIndex(2, 'v_proj'))!;
      const expected = factorValues(2, 'v_proj', 'lora_A', m.a.length).map((x) => decode(encode(x)));
      assert.ok(m.a instanceof Float32Array);
      assert.deepEqual(m.a, expected);
    });
  }

  test('tolerates the ".default." adapter-name infix', async () => {
    const dir = await dirs.adapter(
      peftConfig(),
      loraTensors(everyLayer(['q_proj', 'v_proj'], 4), { infix: '.default' }),
    );
    const adapter = await load(dir);
    assert.equal(adapter.modules.size, 6);
    assert.deepEqual(adapter.modules.get(moduleIndex(0, 'q_proj'))!.a, factorValues(0, 'q_proj', 'lora_A', 4 * 8));
  });

  test('fan_in_fan_out and unmatched pattern keys load, with warnings', async () => {
    const config = peftConfig({ fan_in_fan_out: true, rank_pattern: { gate_proj: 2 } });
    const adapter = await load(await dirs.adapter(config, loraTensors(everyLayer(['q_proj', 'v_proj'], 4))));
    assert.equal(adapter.warnings?.length, 2);
    assert.match(adapter.warnings![0], /fan_in_fan_out/);
    assert.match(adapter.warnings![1], /rank_pattern key "gate_proj" matches no targeted module/);
  });
});
