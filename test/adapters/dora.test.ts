/**
 * DoRA adapters: the norm of W + s·B·A per output row, the output scales a load computes from the served base
 * weights, how they are packed, and what is refused. The oracle conformance (test/conformance) pins the served
 * numbers against PEFT; these pin the pieces.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type BaseProjections,
  projectionsFromModelDir,
  projectionsInMemory,
} from '../../src/adapters/base-projections.ts';
import { doraWeightNorm } from '../../src/adapters/dora.ts';
import { ThreadAdapterLoader } from '../../src/adapters/loader/loader-thread.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import type { LoraModuleWeights } from '../../src/adapters/types.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { moduleIndex, moduleKinds, moduleShape, numModules } from '../../src/model/modules.ts';
import { assertRejects, BASE, everyLayer, loraTensors, moduleKey, peftConfig, TempDirs } from './helpers.ts';

const QWEN2 = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'qwen2');
const dirs = new TempDirs();
after(() => dirs.cleanup());

function magnitudes(layers: number, kinds: ('q_proj' | 'v_proj')[], length = (n: number) => n) {
  const out = [];
  for (let layer = 0; layer < layers; layer++) {
    for (const kind of kinds) {
      const n = length(moduleShape(BASE, kind).outFeatures);
      out.push({
        name: `base_model.model.${moduleKey(layer, kind)}.lora_magnitude_vector`,
        dtype: 'F32' as const,
        shape: [n],
        data: Float32Array.from({ length: n }, (_, i) => 1 + i / 8),
      });
    }
  }
  return out;
}

function assertOutScales(mod: LoraModuleWeights, norms: Float64Array) {
  for (let i = 0; i < norms.length; i++) {
    assert.equal(mod.dora!.outScale[i], Math.fround(mod.dora!.magnitude[i] / norms[i]), `output ${i}`);
  }
}

/** Zero base weights: W + s·B·A is then s·B·A. */
const zeroBase: BaseProjections = {
  async weight(_layer, kind) {
    const { inFeatures, outFeatures } = moduleShape(BASE, kind);
    return new Float32Array(inFeatures * outFeatures);
  },
  async table() {
    return new Float32Array(BASE.vocabSize * BASE.hiddenSize);
  },
};

describe('doraWeightNorm', () => {
  test('is ‖W_i + scale·(B·A)_i‖ over the inputs of each output row', () => {
    // W = [[3, 4], [1, 0]], A = [[1, 0]], B = [[0], [2]], scale 0.5: rows [3, 4] and [1 + 1, 0]
    const mod: LoraModuleWeights = {
      kind: 'q_proj',
      layer: 0,
      rank: 1,
      scale: 0.5,
      a: Float32Array.of(1, 0),
      b: Float32Array.of(0, 2),
    };
    assert.deepEqual([...doraWeightNorm(Float32Array.of(3, 4, 1, 0), 2, 2, mod)], [5, 2]);
  });
});

describe('loading DoRA adapters', () => {
  test('each DoRA module gets m / ‖W + s·B·A‖ from the served weights; packed at its own offset', async () => {
    const loaded = await loadModelDir(join(QWEN2, 'model'));
    const { config } = loaded;
    const adapter = await loadPeftAdapter(join(QWEN2, 'adapters', 'dora'), config, {
      maxLoraRank: 64,
      baseWeights: projectionsInMemory(loaded.weights),
    });
    const kinds = moduleKinds(config);
    for (const mod of adapter.modules.values()) {
      assert.ok(mod.dora, `${mod.kind} of layer ${mod.layer} has DoRA vectors`);
      const w = await projectionsInMemory(loaded.weights).weight(mod.layer, mod.kind);
      const { inFeatures: k, outFeatures: n } = moduleShape(config, mod.kind);
      const norms = doraWeightNorm(w, n, k, mod);
      assertOutScales(mod, norms);
    }
    const packed = packAdapter(adapter, config);
    assert.ok(packed.outScale && packed.offsetOutScale);
    for (let m = 0; m < numModules(config); m++) {
      const mod = adapter.modules.get(m);
      if (!mod) {
        assert.equal(packed.offsetOutScale[m], -1, `module ${m} (${kinds[m % kinds.length]}) has no out-scale`);
        continue;
      }
      const at: number = packed.offsetOutScale[m];
      assert.deepEqual(packed.outScale.subarray(at, at + packed.outFeatures[m]), mod.dora!.outScale);
    }
    // q and v of the fused q|k|v group are DoRA, k is not targeted at all
    assert.equal(packed.offsetOutScale[moduleIndex(0, 'k_proj', kinds)], -1);
    assert.ok(packed.offsetOutScale[moduleIndex(0, 'v_proj', kinds)] >= 0);
  });

  test('a plain LoRA adapter packs without out-scales', async () => {
    const { config } = await loadModelDir(join(QWEN2, 'model'));
    const adapter = await loadPeftAdapter(join(QWEN2, 'adapters', 'qv-r8'), config, { maxLoraRank: 64 });
    const packed = packAdapter(adapter, config);
    assert.equal(packed.outScale, undefined);
    assert.equal(packed.offsetOutScale, undefined);
  });

  test('the loader thread reads the base from the model directory: the same out-scales as in memory', async () => {
    const loaded = await loadModelDir(join(QWEN2, 'model'));
    const dir = join(QWEN2, 'adapters', 'dora-all-rslora');
    const inMemory = packAdapter(
      await loadPeftAdapter(dir, loaded.config, { maxLoraRank: 64, baseWeights: projectionsInMemory(loaded.weights) }),
      loaded.config,
    );
    const fromDir = await projectionsFromModelDir(join(QWEN2, 'model'), loaded.config).weight(1, 'k_proj');
    assert.deepEqual(fromDir, await projectionsInMemory(loaded.weights).weight(1, 'k_proj'));
    const loader = new ThreadAdapterLoader({ base: loaded.config, maxLoraRank: 64, modelDir: join(QWEN2, 'model') });
    try {
      const { packed } = await loader.load('dora-all-rslora', dir);
      assert.deepEqual(packed.outScale, inMemory.outScale);
      assert.deepEqual(packed.offsetOutScale, inMemory.offsetOutScale);
      assert.deepEqual(packed.weights, inMemory.weights);
    } finally {
      await loader.close();
    }
  });

  test('without the base weights a DoRA adapter is refused, naming use_dora', async () => {
    const { config } = await loadModelDir(join(QWEN2, 'model'));
    await assertRejects(
      () => loadPeftAdapter(join(QWEN2, 'adapters', 'dora'), config, { maxLoraRank: 64 }),
      'ADAPTER_UNSUPPORTED_FEATURE',
      'use_dora',
      "base model's weights",
    );
  });

  test('a magnitude vector of the wrong length', async () => {
    const tensors = [
      ...loraTensors(everyLayer(['q_proj', 'v_proj'], 4)),
      ...magnitudes(3, ['q_proj', 'v_proj'], (n) => n + 1),
    ];
    const dir = await dirs.adapter(peftConfig({ use_dora: true }), tensors);
    await assertRejects(
      () => loadPeftAdapter(dir, BASE, { maxLoraRank: 8, baseWeights: zeroBase }),
      'ADAPTER_TENSOR_SHAPE',
      'lora_magnitude_vector',
      '[12]',
    );
  });

  test('a row whose W + s·B·A is zero (no finite scale) is refused', async () => {
    const tensors = loraTensors(everyLayer(['q_proj', 'v_proj'], 4)).map((t) =>
      t.name.includes('lora_B') ? { ...t, data: new Float32Array(t.shape[0] * t.shape[1]) } : t,
    );
    const dir = await dirs.adapter(peftConfig({ use_dora: true }), [
      ...tensors,
      ...magnitudes(3, ['q_proj', 'v_proj']),
    ]);
    await assertRejects(
      () => loadPeftAdapter(dir, BASE, { maxLoraRank: 8, baseWeights: zeroBase }),
      'ADAPTER_WEIGHTS_INVALID',
      'lora_magnitude_vector of q_proj in layer 0',
      'not finite',
    );
  });

  test('a synthetic DoRA adapter loads over the given base weights', async () => {
    const dir = await dirs.adapter(peftConfig({ use_dora: true }), [
      ...loraTensors(everyLayer(['q_proj', 'v_proj'], 4)),
      ...magnitudes(3, ['q_proj', 'v_proj']),
    ]);
    const adapter = await loadPeftAdapter(dir, BASE, { maxLoraRank: 8, baseWeights: zeroBase });
    assert.equal(adapter.modules.size, 6);
    for (const mod of adapter.modules.values()) {
      // zero W: the norm is that of s·B·A alone
      const { inFeatures: k, outFeatures: n } = moduleShape(BASE, mod.kind);
      assertOutScales(mod, doraWeightNorm(new Float32Array(n * k), n, k, mod));
    }
  });
});
