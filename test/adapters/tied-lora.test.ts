/**
 * NeMo Tied-LoRA .nemo adapters (weight_tying: true; oracle/tied_lora_fixtures.py → test/fixtures/tied-lora): the
 * factors saved once, under the first adapted layer, serve every adapted layer. Each archive packs to exactly the
 * weights of its PEFT twin (the factors repeated per layer), and the engine matches the oracle's reference (the base
 * model with hooks adding the tied delta; transformers + PEFT agree with it) alone, in one mixed batch with the base,
 * the other tied adapters and their twins, and under chunked prefill. Then the tied files that are refused.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bufferSource } from '../../src/adapters/formats/nemo/byte-source.ts';
import { loadNemoAdapter } from '../../src/adapters/formats/nemo/load.ts';
import { listTar } from '../../src/adapters/formats/nemo/tar.ts';
import { readTorchCheckpoint } from '../../src/adapters/formats/nemo/torch-checkpoint.ts';
import { loadPackedAdapter } from '../../src/adapters/loader/load-packed.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import type { PackedAdapter } from '../../src/kernels/types.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { type ErrorCode, LoraplexError } from '../../src/observability/errors.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';
import { TempDirs } from './helpers.ts';
import { type TensorToSave, tar, torchSave } from './nemo-writer.ts';

/** LORAPLEX_TIED_LORA_FIXTURES_DIR: a live regeneration (oracle/tied_lora_fixtures.py OUT_DIR), as in CI. */
const ROOT = process.env.LORAPLEX_TIED_LORA_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'tied-lora');
const NEMO = join(import.meta.dirname, '..', 'fixtures', 'nemo');
const TINY = join(import.meta.dirname, '..', 'fixtures', 'tiny');
const SETS = ['llama-tied', 'phi3'];
const ADAPTERS = ['tied-qkv', 'tied-all-canonical', 'tied-bf16-selected'];
const LOGIT_TOLERANCE = 1e-3;

interface TiedCase {
  id: string;
  adapter: string;
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
}

const dirs = new TempDirs();
after(() => dirs.cleanup());
const nemoDir = (set: string, adapter: string) => join(ROOT, set, 'nemo', adapter);

/** Module m's rank, scale, A [rank, K] and Bt [rank, N] as a slot reads them (shared regions or not). */
function factorsOf(p: PackedAdapter, m: number) {
  const r = p.rank[m];
  const a = p.weights.slice(p.offsetA[m], p.offsetA[m] + r * p.inFeatures[m]);
  const bt = p.weights.slice(p.offsetB[m], p.offsetB[m] + r * p.outFeatures[m]);
  return { rank: r, scale: p.scale[m], a, bt };
}

for (const set of SETS) {
  describe(`tied-lora: ${set}`, async () => {
    const expected = JSON.parse(readFileSync(join(ROOT, set, 'expected.json'), 'utf8'));
    const cases: TiedCase[] = expected.cases;
    const logits = await SafetensorsFile.open(join(ROOT, set, 'logits.safetensors'));
    const loaded = await loadModelDir(join(TINY, set, 'model'));

    for (const adapter of ADAPTERS) {
      test(`${adapter}: the layer-0 factors serve every adapted layer, exactly as its PEFT twin`, async () => {
        const nemo = await loadNemoAdapter(nemoDir(set, adapter), loaded.config, { maxLoraRank: 64 });
        const peft = await loadPeftAdapter(join(ROOT, set, 'peft', adapter), loaded.config, { maxLoraRank: 64 });
        assert.ok(nemo.config.format === 'nemo' && nemo.config.weightTying);
        assert.equal(nemo.modules.size, peft.modules.size);
        const [tied, twin] = [packAdapter(nemo, loaded.config), packAdapter(peft, loaded.config)];
        for (let m = 0; m < twin.rank.length; m++)
          assert.deepEqual(factorsOf(tied, m), factorsOf(twin, m), `module ${m}`);
        // one A and one B per projection kind, whatever the number of layers (every layer is adapted alike)
        assert.equal(tied.weights.length, twin.weights.length / loaded.config.numLayers);
        const layers = new Set([...nemo.modules.values()].map((m) => m.layer));
        assert.equal(layers.size, loaded.config.numLayers, 'every layer is adapted');
      });
    }

    test('served, each matches the tied reference alone, mixed with the base and PEFT twins, and chunked', async (t) => {
      const engineWith = (overrides = {}) =>
        new LLMEngine(loaded, {
          ...DEFAULT_ENGINE_OPTIONS,
          kvCacheTokens: 4096,
          loraDtype: 'f32',
          backend: createBackend('native'),
          ...overrides,
        });
      const alone = engineWith();
      const chunked = engineWith({ maxBatchTokens: 5 });
      for (const c of cases) {
        const { packed } = await loadPackedAdapter(c.adapter, nemoDir(set, c.adapter), loaded.config, 64);
        const twinDir = join(ROOT, set, 'peft', c.adapter);
        const { packed: twin } = await loadPackedAdapter(`peft-${c.adapter}`, twinDir, loaded.config, 64);
        for (const engine of [alone, chunked]) {
          engine.addAdapter(c.adapter, packed);
          engine.addAdapter(`peft-${c.adapter}`, twin);
        }
      }
      const requests = (c: TiedCase, adapter = c.adapter) => [
        { promptIds: c.prompt_ids, adapter, params: { maxTokens: 1, temperature: 0, promptLogits: true } },
        ...c.greedy.map((g) => ({
          promptIds: g.prompt_ids,
          adapter,
          params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
        })),
      ];
      const want = new Map<string, Float32Array>();
      for (const c of cases) want.set(c.id, (await logits.readF32(c.logits_key)).data);
      let worst = 0;
      const check = (seqs: ReturnType<LLMEngine['generate']>, c: TiedCase, how: string) => {
        const diff = maxAbsDiff(seqs[0].promptLogits!, want.get(c.id)!);
        worst = Math.max(worst, diff);
        assert.ok(diff <= LOGIT_TOLERANCE, `${c.id} ${how}: prompt logits max |Δ| ${diff}`);
        for (const [i, g] of c.greedy.entries()) {
          assert.deepEqual(seqs[1 + i].outputIds, g.tokens, `${c.id} ${how}: greedy ${i}`);
        }
      };
      for (const c of cases) check(alone.generate(requests(c)), c, 'alone');
      const base = { promptIds: cases[0].prompt_ids, adapter: null, params: { maxTokens: 4, temperature: 0 } };
      const runs = cases.flatMap((c) => [
        { c, how: 'tied', reqs: requests(c) },
        { c, how: 'its PEFT twin', reqs: requests(c, `peft-${c.adapter}`) },
      ]);
      for (const [engine, how] of [
        [alone, 'mixed'],
        [chunked, 'mixed + chunked'],
      ] as const) {
        const all = engine.generate([base, ...runs.flatMap((r) => r.reqs)]);
        let at = 1;
        for (const r of runs) {
          check(all.slice(at, at + r.reqs.length), r.c, `${how} (${r.how})`);
          at += r.reqs.length;
        }
      }
      t.diagnostic(`worst |Δlogit| ${worst}`);
    });
  });
}

/** The members of a .nemo, to rebuild it with one changed. */
async function members(file: string): Promise<{ config: string; weights: Buffer }> {
  const bytes = await readFile(file);
  const list = await listTar(bufferSource(bytes));
  const get = (name: string) => {
    const m = list.find((x) => x.name === name)!;
    return bytes.subarray(m.offset, m.offset + m.size);
  };
  return { config: get('model_config.yaml').toString('utf8'), weights: Buffer.from(get('model_weights.ckpt')) };
}

async function refused(config: string, weights: Buffer, base: ModelConfig, code: ErrorCode, pattern: RegExp) {
  const dir = await dirs.make();
  await writeFile(
    join(dir, 'x.nemo'),
    tar([
      ['./model_config.yaml', Buffer.from(config)],
      ['./model_weights.ckpt', weights],
    ]),
  );
  await assert.rejects(loadNemoAdapter(dir, base, { maxLoraRank: 64, name: 'bad' }), (e: unknown) => {
    assert.ok(e instanceof LoraplexError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes(dir), `the message shows a server path: ${e.message}`);
    return true;
  });
}

test('tied files that are refused: position embeddings, copies that differ, a layer without its copy', async () => {
  const base = (await loadModelDir(join(TINY, 'llama-tied', 'model'))).config;
  const tied = await members(join(nemoDir('llama-tied', 'tied-qkv'), 'tied-qkv.nemo'));
  for (const strategy of ['concat', 'add', 'biasadd', 'mlpconcat']) {
    const config = tied.config.replace('position_embedding_strategy: null', `position_embedding_strategy: ${strategy}`);
    assert.notEqual(config, tied.config);
    await refused(config, tied.weights, base, 'ADAPTER_UNSUPPORTED_FEATURE', /position_embedding_strategy: is "/);
  }
  // per-layer (untied) weights under weight_tying: true: layer 1's factors are not layer 0's
  const perLayer = await members(join(NEMO, 'llama-tied', 'nemo', 'fused-all', 'fused-all.nemo'));
  await refused(
    perLayer.config.replace('weight_tying: false', 'weight_tying: true'),
    perLayer.weights,
    base,
    'ADAPTER_WEIGHTS_INVALID',
    /decoder\.layers\.1\..*differs from '.*decoder\.layers\.0\..*with weight_tying: true \(Tied-LoRA\)/,
  );
  // position embeddings exist only with weight tying (LoraPEFTConfig): without it the field changes nothing
  const untied = perLayer.config.replace('position_embedding_strategy: null', 'position_embedding_strategy: concat');
  assert.notEqual(untied, perLayer.config);
  const dir = await dirs.make();
  await writeFile(
    join(dir, 'x.nemo'),
    tar([
      ['./model_config.yaml', Buffer.from(untied)],
      ['./model_weights.ckpt', perLayer.weights],
    ]),
  );
  assert.equal((await loadNemoAdapter(dir, base, { maxLoraRank: 64 })).modules.size, 2 * 7); // 2 layers × 7 projections
  // NeMo saves every adapted layer's name (its adapter keys are taken before tying): layer 0's copy alone is incomplete
  const ckpt = await readTorchCheckpoint(bufferSource(tied.weights));
  const layer0: TensorToSave[] = [];
  for (const [name, t] of ckpt.tensors) {
    if (name.includes('.layers.0.')) layer0.push({ name, shape: [...t.size], data: await ckpt.readF32(name) });
  }
  assert.ok(layer0.length > 0 && layer0.length < ckpt.tensors.size);
  await refused(tied.config, torchSave(layer0), base, 'ADAPTER_TENSOR_MISSING', /layer 1/);
});
