import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { packAdapter } from '../../src/adapters/pack.ts';
import { parsePeftAdapterConfig } from '../../src/adapters/peft/adapter-config.ts';
import type { LoraAdapter, LoraModuleWeights } from '../../src/adapters/types.ts';
import { type ModuleKind, moduleIndex, moduleShape, numModules } from '../../src/model/modules.ts';
import { assertThrows, BASE, factorValues, peftConfig } from './helpers.ts';

function moduleWeights(layer: number, kind: ModuleKind, rank: number, scale: number): LoraModuleWeights {
  const { inFeatures, outFeatures } = moduleShape(BASE, kind);
  return {
    kind,
    layer,
    rank,
    scale,
    a: factorValues(layer, kind, 'lora_A', rank * inFeatures),
    b: factorValues(layer, kind, 'lora_B', outFeatures * rank),
  };
}

function adapterOf(mods: LoraModuleWeights[]): LoraAdapter {
  return {
    name: 'test',
    rankMax: Math.max(...mods.map((m) => m.rank)),
    targets: [...new Set(mods.map((m) => m.kind))],
    modules: new Map(mods.map((m) => [moduleIndex(m.layer, m.kind), m])),
    config: parsePeftAdapterConfig(JSON.stringify(peftConfig()), 'adapter_config.json'),
    sizeBytes: mods.reduce((s, m) => s + (m.a.length + m.b.length) * 4, 0),
  };
}

describe('packAdapter', () => {
  const mods = [
    moduleWeights(0, 'q_proj', 2, 0.5),
    moduleWeights(1, 'down_proj', 3, 2),
    moduleWeights(2, 'v_proj', 1, 4),
  ];
  const packed = packAdapter(adapterOf(mods), BASE);

  test('covers every module index with its in/out features; untargeted ones have rank 0', () => {
    const count = numModules(BASE);
    for (const arr of [
      packed.rank,
      packed.offsetA,
      packed.offsetB,
      packed.scale,
      packed.inFeatures,
      packed.outFeatures,
    ]) {
      assert.equal(arr.length, count);
    }
    for (let m = 0; m < count; m++) {
      const kind = (['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const)[m % 7];
      assert.equal(packed.inFeatures[m], moduleShape(BASE, kind).inFeatures);
      assert.equal(packed.outFeatures[m], moduleShape(BASE, kind).outFeatures);
    }
    const targeted = new Set(mods.map((m) => moduleIndex(m.layer, m.kind)));
    for (let m = 0; m < count; m++) {
      if (targeted.has(m)) continue;
      assert.equal(packed.rank[m], 0);
      assert.equal(packed.scale[m], 0);
    }
  });

  test('A [rank, K] then Bᵀ [rank, N] per module, in module order, back to back', () => {
    let expectedOffset = 0;
    for (const mod of mods) {
      const m = moduleIndex(mod.layer, mod.kind);
      const k = packed.inFeatures[m];
      const n = packed.outFeatures[m];
      assert.equal(packed.rank[m], mod.rank);
      assert.equal(packed.scale[m], mod.scale);
      assert.equal(packed.offsetA[m], expectedOffset);
      assert.deepEqual(packed.weights.subarray(packed.offsetA[m], packed.offsetA[m] + mod.rank * k), mod.a);
      assert.equal(packed.offsetB[m], expectedOffset + mod.rank * k);
      for (let j = 0; j < mod.rank; j++) {
        for (let i = 0; i < n; i++) {
          assert.equal(
            packed.weights[packed.offsetB[m] + j * n + i],
            mod.b[i * mod.rank + j],
            `Bt[${j}, ${i}] of module ${m}`,
          );
        }
      }
      expectedOffset += mod.rank * (k + n);
    }
    assert.equal(packed.weights.length, expectedOffset);
  });

  test('computes y += scale · (x · Aᵀ) · Bt as the unpacked factors do', () => {
    const mod = mods[1];
    const m = moduleIndex(mod.layer, mod.kind);
    const k = packed.inFeatures[m];
    const n = packed.outFeatures[m];
    const x = Float32Array.from({ length: k }, (_, i) => Math.sin(i + 1));
    const viaPacked = new Float64Array(n);
    const viaFactors = new Float64Array(n);
    for (let j = 0; j < mod.rank; j++) {
      let xa = 0;
      for (let c = 0; c < k; c++) xa += x[c] * packed.weights[packed.offsetA[m] + j * k + c];
      for (let i = 0; i < n; i++) viaPacked[i] += packed.scale[m] * xa * packed.weights[packed.offsetB[m] + j * n + i];
    }
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < mod.rank; j++) {
        let xa = 0;
        for (let c = 0; c < k; c++) xa += x[c] * mod.a[j * k + c];
        viaFactors[i] += mod.scale * xa * mod.b[i * mod.rank + j];
      }
    }
    for (let i = 0; i < n; i++) assert.ok(Math.abs(viaPacked[i] - viaFactors[i]) < 1e-9);
  });

  test('an adapter with no modules packs to empty weights and all-zero ranks', () => {
    const empty = packAdapter({ ...adapterOf(mods), modules: new Map() }, BASE);
    assert.equal(empty.weights.length, 0);
    assert.ok(empty.rank.every((r) => r === 0));
  });

  test('refuses factors that do not fit the base model it packs for', () => {
    const smaller = { ...BASE, hiddenSize: 6 };
    return assertThrows(() => packAdapter(adapterOf(mods), smaller), 'ADAPTER_BASE_MISMATCH', 'q_proj of layer 0');
  });

  test('refuses a module index past the base model', () => {
    const fewer = { ...BASE, numLayers: 2 };
    return assertThrows(() => packAdapter(adapterOf(mods), fewer), 'ADAPTER_BASE_MISMATCH', 'v_proj of layer 2');
  });
});
