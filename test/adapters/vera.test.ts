/**
 * VeRA (PEFT's peft_type VERA): the shared matrices PEFT regenerates from projection_prng_key, the per-module
 * LoRA factors the loader materializes, and the files it refuses. The served outputs against PEFT are pinned by
 * the conformance suite (test/conformance: the tiny llama-tied and qwen2 sets carry three VeRA adapters).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fmaF32, Mt19937 } from '../../src/adapters/kinds/torch-random.ts';
import { regenerateVeraProjection, VeraSlices } from '../../src/adapters/kinds/vera.ts';
import { loadPackedAdapter } from '../../src/adapters/loader/load-packed.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { plainPacked } from '../../src/kernels/packed-plain.ts';
import { parseModelConfig } from '../../src/model/config-parse.ts';
import { moduleIndex, moduleKinds, moduleShape } from '../../src/model/modules.ts';
import { SafetensorsFile, type TensorToWrite } from '../../src/model/safetensors.ts';
import { assertRejects, TempDirs } from './helpers.ts';

const SET = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'qwen2');
const base = parseModelConfig(
  JSON.parse(readFileSync(join(SET, 'model', 'config.json'), 'utf8')),
  join(SET, 'model', 'config.json'),
);
const adapterDir = (name: string) => join(SET, 'adapters', name);
const configOf = (name: string) => JSON.parse(readFileSync(join(adapterDir(name), 'adapter_config.json'), 'utf8'));

async function tensorsOf(name: string): Promise<TensorToWrite[]> {
  const file = await SafetensorsFile.open(join(adapterDir(name), 'adapter_model.safetensors'));
  const out: TensorToWrite[] = [];
  for (const t of file.tensors.values()) {
    out.push({ name: t.name, dtype: 'F32', shape: [...t.shape], data: (await file.readF32(t.name)).data });
  }
  return out;
}

describe("torch's CPU generator, as PEFT draws VeRA's matrices", () => {
  test('MT19937 gives the reference outputs (seed 5489 and 0, first draw and the 10000th)', () => {
    const g = new Mt19937(5489);
    assert.equal(g.next(), 3499211612);
    for (let i = 1; i < 9999; i++) g.next();
    assert.equal(g.next(), 4123659995); // the C++ standard's check value for mt19937
    assert.equal(new Mt19937(0).next(), 2357136044);
    assert.equal(new Mt19937(2 ** 32 + 5489).next(), 3499211612, 'torch seeds with the low 32 bits');
  });

  test('fmaF32 rounds once: a sum that lands on a float32 tie in f64 goes the way its exact value does', () => {
    // 1 + 2⁻²⁴ is the tie between 1 and 1 + 2⁻²³; a tiny extra term decides it, which f64 alone loses
    const u = 1 + 2 ** -23; // float32
    const d = 2 ** -24 + 2 ** -47; // float32 (24 significant bits)
    assert.equal(fmaF32(u, d, 1), 1 + 2 ** -23);
    assert.equal(fmaF32(1, 2 ** -24, 1), 1, 'an exact tie rounds to even');
    assert.equal(fmaF32(0.5, 0.25, -1), -0.875);
  });

  for (const name of ['vera-qv', 'vera-all']) {
    test(`${name}: the matrices PEFT saved are exactly those regenerated from projection_prng_key`, async () => {
      const config = configOf(name);
      const file = await SafetensorsFile.open(join(adapterDir(name), 'adapter_model.safetensors'));
      const a = await file.readF32('base_model.vera_A');
      const b = await file.readF32('base_model.vera_B');
      const again = regenerateVeraProjection(config.projection_prng_key, config.r, a.shape[1], b.shape[0]);
      assert.deepEqual(again.a, a.data);
      assert.deepEqual(again.b, b.data);
    });
  }
});

describe('VeRA adapters load as shared factors with per-module vectors', () => {
  test('each module: a = A[:, :in], b = B[:out, :], rankScale λd, columnScale λb, rank r, scale 1; one slice per shape', async () => {
    const adapter = await loadPeftAdapter(adapterDir('vera-all'), base, { maxLoraRank: 64 });
    const file = await SafetensorsFile.open(join(adapterDir('vera-all'), 'adapter_model.safetensors'));
    const A = await file.readF32('base_model.vera_A');
    const B = await file.readF32('base_model.vera_B');
    const r = configOf('vera-all').r;
    const kinds = moduleKinds(base);
    assert.equal(adapter.modules.size, base.numLayers * 7);
    assert.deepEqual(adapter.targets, kinds);
    const down = adapter.modules.get(moduleIndex(1, 'down_proj', kinds))!;
    const { inFeatures: k, outFeatures: n } = moduleShape(base, 'down_proj');
    const prefix = 'base_model.model.model.layers.1.mlp.down_proj';
    assert.deepEqual(down.rankScale, (await file.readF32(`${prefix}.vera_lambda_d`)).data);
    assert.deepEqual(down.columnScale, (await file.readF32(`${prefix}.vera_lambda_b`)).data);
    assert.equal(down.rank, r);
    assert.equal(down.scale, 1);
    for (let j = 0; j < r; j++) for (let c = 0; c < k; c++) assert.equal(down.a[j * k + c], A.data[j * A.shape[1] + c]);
    assert.deepEqual(down.b, B.data.subarray(0, n * r));
    // the smaller q_proj reads the top-left corner of the same matrices
    const q = adapter.modules.get(moduleIndex(0, 'q_proj', kinds))!;
    const qk = moduleShape(base, 'q_proj').inFeatures;
    assert.equal(q.a[qk + 3], A.data[A.shape[1] + 3]);
    // every module of one shape holds the same arrays: one copy per adapter, whatever the number of layers
    for (let layer = 0; layer < base.numLayers; layer++) {
      for (const kind of kinds) {
        const m = adapter.modules.get(moduleIndex(layer, kind, kinds))!;
        const first = adapter.modules.get(moduleIndex(0, kind, kinds))!;
        assert.equal(m.a, first.a, `${kind} of layer ${layer} shares A`);
        assert.equal(m.b, first.b, `${kind} of layer ${layer} shares B`);
      }
    }
    const distinct = new Set([...adapter.modules.values()].flatMap((m) => [m.a, m.b]));
    const sharedBytes = [...distinct].reduce((s, t) => s + t.byteLength, 0);
    const vectorBytes = [...adapter.modules.values()].reduce(
      (s, m) => s + m.rankScale!.byteLength + m.columnScale!.byteLength,
      0,
    );
    assert.equal(adapter.sizeBytes, sharedBytes + vectorBytes);
  });

  test("packed: shared slices once, each module pointing at its shape's; λd and λb as rank and column scales", async () => {
    const adapter = await loadPeftAdapter(adapterDir('vera-all'), base, { maxLoraRank: 64 });
    const packed = packAdapter(adapter, base);
    const distinct = new Set([...adapter.modules.values()].flatMap((m) => [m.a, m.b]));
    assert.equal(
      packed.weights.length,
      [...distinct].reduce((s, t) => s + t.length, 0),
    );
    const kinds = moduleKinds(base);
    for (const [m, mod] of adapter.modules) {
      const first = moduleIndex(0, mod.kind, kinds);
      assert.equal(packed.offsetA[m], packed.offsetA[first]);
      assert.equal(packed.offsetB[m], packed.offsetB[first]);
      const rs = packed.offsetRankScale![m];
      const cs = packed.offsetColumnScale![m];
      assert.deepEqual(packed.rankScale!.subarray(rs, rs + mod.rank), mod.rankScale);
      assert.deepEqual(packed.columnScale!.subarray(cs, cs + packed.outFeatures[m]), mod.columnScale);
    }
    // plainPacked folds them back into per-module factors: diag(λd)·A and Bt·diag(λb)
    const plain = plainPacked(packed);
    assert.equal(plain.offsetRankScale, undefined);
    const m = moduleIndex(1, 'down_proj', kinds);
    const mod = adapter.modules.get(m)!;
    const k = packed.inFeatures[m];
    const n = packed.outFeatures[m];
    assert.equal(plain.weights[plain.offsetA[m] + 2 * k + 5], Math.fround(mod.a[2 * k + 5] * mod.rankScale![2]));
    assert.equal(
      plain.weights[plain.offsetB[m] + 2 * n + 7],
      Math.fround(mod.b[7 * mod.rank + 2] * mod.columnScale![7]),
    );
  });

  test('save_projection false: the matrices come from projection_prng_key, with a warning saying so', async () => {
    const adapter = await loadPeftAdapter(adapterDir('vera-mlp-prng'), base, { maxLoraRank: 64 });
    assert.deepEqual(adapter.targets, ['gate_proj', 'up_proj', 'down_proj']);
    assert.ok(adapter.warnings?.some((w) => /regenerated from projection_prng_key 20261204/.test(w)));
    assert.equal(adapter.config.format, 'peft');
  });

  test('the loader thread, --adapter and the store load a VeRA folder like any PEFT adapter', async () => {
    const { packed, summary } = await loadPackedAdapter('v', adapterDir('vera-qv'), base, 64);
    assert.equal(summary.rank, 16);
    assert.deepEqual(summary.targets, ['q_proj', 'v_proj']);
    assert.equal(packed.rank.filter((r) => r > 0).length, base.numLayers * 2);
  });

  test('VeraSlices refuses a module larger than the shared matrices', () => {
    const shared = regenerateVeraProjection(1, 2, 4, 3);
    assert.throws(() => new VeraSlices(shared).module(new Float32Array(2), new Float32Array(3), 5), RangeError);
    assert.throws(() => new VeraSlices(shared).module(new Float32Array(2), new Float32Array(4), 4), RangeError);
  });
});

describe('VeRA files loraplex refuses, naming the field or tensor', () => {
  const temp = new TempDirs();
  after(() => temp.cleanup());
  const load = async (dir: Promise<string>) => loadPeftAdapter(await dir, base, { maxLoraRank: 64, name: 'v' });

  test('config fields that change the computation', async () => {
    const tensors = await tensorsOf('vera-qv');
    const config = configOf('vera-qv');
    for (const [override, code, fragment] of [
      [{ bias: 'vera_only' }, 'ADAPTER_UNSUPPORTED_FEATURE', 'bias'],
      [{ modules_to_save: ['q_proj'] }, 'ADAPTER_UNSUPPORTED_FEATURE', 'modules_to_save'],
      [{ projection_prng_key: 1.5 }, 'ADAPTER_INVALID_CONFIG', 'projection_prng_key'],
      [{ target_modules: ['lm_head'] }, 'ADAPTER_UNSUPPORTED_TARGET', 'lm_head'],
      [{ r: 200 }, 'ADAPTER_RANK_TOO_HIGH', '200'],
      [{ peft_type: 'LOHA' }, 'ADAPTER_UNSUPPORTED_FEATURE', 'LoRA ("peft_type": "LORA") and VeRA'],
    ] as const) {
      await assertRejects(() => load(temp.adapter({ ...config, ...override }, tensors)), code, fragment);
    }
  });

  test('a saved module the config does not list, or a LoRA tensor among VeRA ones', async () => {
    const tensors = await tensorsOf('vera-qv');
    const config = configOf('vera-qv');
    const H = base.hiddenSize;
    const norm: TensorToWrite = {
      name: 'base_model.model.model.norm.weight',
      dtype: 'F32',
      shape: [H],
      data: new Float32Array(H),
    };
    await assertRejects(
      () => load(temp.adapter(config, [...tensors, norm])),
      'ADAPTER_TENSOR_UNEXPECTED',
      'model.norm.weight',
      'no modules_to_save',
    );
    const r = configOf('vera-qv').r;
    const headA: TensorToWrite = {
      name: 'base_model.model.lm_head.lora_A.weight',
      dtype: 'F32',
      shape: [r, H],
      data: new Float32Array(r * H),
    };
    await assertRejects(
      () => load(temp.adapter({ ...config, modules_to_save: ['norm'] }, [...tensors, headA])),
      'ADAPTER_TENSOR_UNEXPECTED',
      'lm_head.lora_A.weight',
    );
  });

  test('missing, misshapen or foreign tensors', async () => {
    const tensors = await tensorsOf('vera-qv');
    const config = configOf('vera-qv');
    const without = (name: string) => tensors.filter((t) => t.name !== name);
    const lambdaB = 'base_model.model.model.layers.1.self_attn.v_proj.vera_lambda_b';
    await assertRejects(
      () => load(temp.adapter(config, without('base_model.vera_A'))),
      'ADAPTER_TENSOR_MISSING',
      'base_model.vera_A',
      'save_projection: true',
    );
    await assertRejects(
      () => load(temp.adapter(config, without(lambdaB))),
      'ADAPTER_TENSOR_MISSING',
      'layers.1.self_attn.v_proj',
      'vera_lambda_b',
    );
    const short = tensors.map((t) => (t.name === lambdaB ? { ...t, shape: [3], data: new Float32Array(3) } : t));
    await assertRejects(() => load(temp.adapter(config, short)), 'ADAPTER_TENSOR_SHAPE', lambdaB, '[3]');
    const narrow = tensors.map((t) =>
      t.name === 'base_model.vera_A' ? { ...t, shape: [t.shape[0], 8], data: new Float32Array(t.shape[0] * 8) } : t,
    );
    await assertRejects(() => load(temp.adapter(config, narrow)), 'ADAPTER_TENSOR_SHAPE', 'vera_A', '[16, 8]', '≥ 64');
    const lora = [
      ...tensors,
      {
        name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        dtype: 'F32' as const,
        shape: [1, 1],
        data: new Float32Array(1),
      },
    ];
    await assertRejects(() => load(temp.adapter(config, lora)), 'ADAPTER_TENSOR_UNEXPECTED', 'not a VeRA tensor');
    const notTargeted = without('base_model.model.model.layers.0.self_attn.q_proj.vera_lambda_d');
    await assertRejects(
      () => load(temp.adapter({ ...config, target_modules: ['v_proj'] }, notTargeted)),
      'ADAPTER_TENSOR_UNEXPECTED',
      'does not target',
    );
  });

  test('a nonsense value in λ is refused like a LoRA factor', async () => {
    const tensors = await tensorsOf('vera-qv');
    const name = 'base_model.model.model.layers.0.self_attn.q_proj.vera_lambda_d';
    const nan = tensors.map((t) => {
      if (t.name !== name) return t;
      const data = new Float32Array(t.data as Float32Array);
      data[0] = Number.NaN;
      return { ...t, data };
    });
    await assertRejects(() => load(temp.adapter(configOf('vera-qv'), nan)), 'ADAPTER_WEIGHTS_INVALID', name);
  });
});
