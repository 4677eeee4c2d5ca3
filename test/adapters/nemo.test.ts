/**
 * NeMo LoRA .nemo adapters (oracle/nemo_fixtures.py → test/fixtures/nemo): each loads to exactly the packed
 * weights of the PEFT adapter it equals, and the engine serving it matches transformers + PEFT on that adapter
 * (prompt logits ≤ 1e-3, greedy tokens identical) alone, in a mixed batch with the base and the other NeMo
 * adapters, and under chunked prefill. Fused (per-KV-group q|k|v rows, shared A), canonical (unfused), bf16
 * with an interpolated alpha and a layer selection, on Llama (GQA) and Phi-3 (fused qkv_proj / gate_up_proj).
 * Then what a .nemo must not get past: wrong base, other PEFT schemes, a Tied-LoRA config over per-layer weights
 * (tied adapters: tied-lora.test.ts), sharded checkpoints, a pickle that runs code, damaged archives.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { bufferSource } from '../../src/adapters/formats/nemo/byte-source.ts';
import { qkvRowsInHfOrder } from '../../src/adapters/formats/nemo/layout.ts';
import { loadNemoAdapter } from '../../src/adapters/formats/nemo/load.ts';
import { listTar } from '../../src/adapters/formats/nemo/tar.ts';
import { loadPackedAdapter } from '../../src/adapters/loader/load-packed.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { LocalDirStore } from '../../src/adapters/store/local-dir-store.ts';
import { createBackend } from '../../src/backends/index.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine as Engine, type LLMEngine } from '../../src/engine/llm-engine.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { type ErrorCode, isLoraplexError, LoraplexError } from '../../src/observability/errors.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';
import { mutateBytes } from '../model/safetensors-mutations.ts';
import { TempDirs } from './helpers.ts';
import { tar } from './nemo-writer.ts';

/** LORAPLEX_NEMO_FIXTURES_DIR: a live regeneration (oracle/nemo_fixtures.py OUT_DIR), as in CI. */
const ROOT = process.env.LORAPLEX_NEMO_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'nemo');
const TINY = join(import.meta.dirname, '..', 'fixtures', 'tiny');
const SETS = ['llama-tied', 'phi3'];
const ADAPTERS = ['fused-all', 'qkv-bf16-layer2', 'canonical-all'];
const LOGIT_TOLERANCE = 1e-3;
/** An OmegaConf resolver (not a node reference): refused, never evaluated. */
const OMEGACONF_RESOLVER = ['$', '{oc.env:HOME}'].join('');

interface NemoCase {
  id: string;
  adapter: string;
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
}

const dirs = new TempDirs();
after(() => dirs.cleanup());

function nemoDir(set: string, adapter: string) {
  return join(ROOT, set, 'nemo', adapter);
}

async function baseOf(set: string): Promise<ModelConfig> {
  return (await loadModelDir(join(TINY, set, 'model'))).config;
}

test('the qkv rows of 4 heads in 2 KV groups come back from megatron order [q0 q1 k0 v0 q2 q3 k1 v1]', () => {
  assert.deepEqual([...qkvRowsInHfOrder({ numHeads: 4, numKvHeads: 2, headDim: 1 })], [0, 1, 4, 5, 2, 6, 3, 7]);
  // multi-head attention: one head per group, [q k v] per head
  assert.deepEqual(
    [...qkvRowsInHfOrder({ numHeads: 2, numKvHeads: 2, headDim: 2 })],
    [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11],
  );
});

for (const set of SETS) {
  describe(`nemo: ${set}`, async () => {
    const expected = JSON.parse(readFileSync(join(ROOT, set, 'expected.json'), 'utf8'));
    const cases: NemoCase[] = expected.cases;
    const logits = await SafetensorsFile.open(join(ROOT, set, 'logits.safetensors'));
    const loaded = await loadModelDir(join(TINY, set, 'model'));

    for (const adapter of ADAPTERS) {
      test(`${adapter}: the .nemo packs to exactly the weights of its PEFT twin`, async () => {
        const nemo = await loadNemoAdapter(nemoDir(set, adapter), loaded.config, { maxLoraRank: 64 });
        const peft = await loadPeftAdapter(join(ROOT, set, 'peft', adapter), loaded.config, { maxLoraRank: 64 });
        assert.deepEqual(nemo.targets, peft.targets);
        assert.equal(nemo.rankMax, peft.rankMax);
        assert.equal(nemo.config.format, 'nemo');
        assert.deepEqual(packAdapter(nemo, loaded.config), packAdapter(peft, loaded.config));
      });
    }

    const engineWith = (overrides = {}) => {
      const engine: LLMEngine = new Engine(loaded, {
        ...DEFAULT_ENGINE_OPTIONS,
        kvCacheTokens: 4096,
        loraDtype: 'f32',
        backend: createBackend('native'),
        ...overrides,
      });
      return engine;
    };
    const requests = (c: NemoCase, adapter = c.adapter) => [
      { promptIds: c.prompt_ids, adapter, params: { maxTokens: 1, temperature: 0, promptLogits: true } },
      ...c.greedy.map((g) => ({
        promptIds: g.prompt_ids,
        adapter,
        params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
      })),
    ];

    test('served through loadPackedAdapter, each matches transformers + PEFT alone, mixed and chunked', async (t) => {
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
      let worst = 0;
      const check = (seqs: ReturnType<LLMEngine['generate']>, c: NemoCase, how: string) => {
        const diff = maxAbsDiff(seqs[0].promptLogits!, want.get(c.id)!);
        worst = Math.max(worst, diff);
        assert.ok(diff <= LOGIT_TOLERANCE, `${c.id} ${how}: prompt logits max |Δ| ${diff}`);
        for (const [i, g] of c.greedy.entries()) {
          assert.deepEqual(seqs[1 + i].outputIds, g.tokens, `${c.id} ${how}: greedy ${i}`);
        }
      };
      const want = new Map<string, Float32Array>();
      for (const c of cases) want.set(c.id, (await logits.readF32(c.logits_key)).data);
      for (const c of cases) check(alone.generate(requests(c)), c, 'alone');
      // Every NeMo adapter, its PEFT twin and the base in one batch, then again with a 5-token prefill budget.
      const base = { promptIds: cases[0].prompt_ids, adapter: null, params: { maxTokens: 4, temperature: 0 } };
      const runs = cases.flatMap((c) => [
        { c, how: 'nemo', reqs: requests(c) },
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

test('an adapter store lists a folder holding one .nemo file, and loads it by name', async () => {
  const store = await dirs.make();
  const folder = join(store, 'support-bot');
  await mkdir(folder);
  await writeFile(
    join(folder, 'fused.nemo'),
    await readFile(join(nemoDir('llama-tied', 'fused-all'), 'fused-all.nemo')),
  );
  await mkdir(join(store, 'empty'));
  const listed = await (await LocalDirStore.open(store)).list();
  assert.deepEqual(
    listed.map((a) => a.name),
    ['support-bot'],
  );
  const { summary } = await loadPackedAdapter('support-bot', listed[0].dir, await baseOf('llama-tied'), 64, store);
  assert.deepEqual(summary.targets, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  assert.equal(summary.rank, 8);
});

test('a gzip-compressed .nemo (NeMo before 1.7) loads like the plain tar', async () => {
  const dir = await dirs.make();
  const plain = await readFile(join(nemoDir('llama-tied', 'qkv-bf16-layer2'), 'qkv-bf16-layer2.nemo'));
  await writeFile(join(dir, 'old.nemo'), gzipSync(plain));
  const base = await baseOf('llama-tied');
  const old = await loadNemoAdapter(dir, base, { maxLoraRank: 64 });
  const current = await loadNemoAdapter(nemoDir('llama-tied', 'qkv-bf16-layer2'), base, { maxLoraRank: 64 });
  assert.deepEqual(packAdapter(old, base), packAdapter(current, base));
});

// --- what is refused ------------------------------------------------------------------------------------

/** The members of a fixture .nemo, to rebuild it with one of them changed. */
async function members(set: string, adapter: string): Promise<{ config: string; weights: Buffer }> {
  const bytes = await readFile(join(nemoDir(set, adapter), `${adapter}.nemo`));
  const list = await listTar(bufferSource(bytes));
  const get = (name: string) => {
    const m = list.find((x) => x.name === name)!;
    return bytes.subarray(m.offset, m.offset + m.size);
  };
  return { config: get('model_config.yaml').toString('utf8'), weights: Buffer.from(get('model_weights.ckpt')) };
}

async function nemoWith(files: [string, Uint8Array][], name = 'x'): Promise<string> {
  const dir = await dirs.make();
  await writeFile(join(dir, `${name}.nemo`), tar(files));
  return dir;
}

async function refusedWith(dir: string, base: ModelConfig, code: ErrorCode, pattern: RegExp) {
  await assert.rejects(loadNemoAdapter(dir, base, { maxLoraRank: 64, name: 'bad' }), (e: unknown) => {
    assert.ok(e instanceof LoraplexError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes(dir), `the message shows a server path: ${e.message}`);
    return true;
  });
}

test('config refusals name the field: scheme, Tied-LoRA, variant, parallel shards, unknown targets, sizes', async () => {
  const llama = await baseOf('llama-tied');
  const { config, weights } = await members('llama-tied', 'fused-all');
  const cases: [string, ErrorCode, RegExp][] = [
    [
      config.replace('peft_scheme: lora', 'peft_scheme: ia3'),
      'ADAPTER_UNSUPPORTED_FEATURE',
      /peft\.peft_scheme: is "ia3"/,
    ],
    [config.replace('weight_tying: false', 'weight_tying: true'), 'ADAPTER_WEIGHTS_INVALID', /Tied-LoRA/],
    [config.replace('variant: nemo', 'variant: dora'), 'ADAPTER_UNSUPPORTED_FEATURE', /variant: is "dora"/],
    [
      config.replace('tensor_model_parallel_size: 1', 'tensor_model_parallel_size: 2'),
      'ADAPTER_UNSUPPORTED_FEATURE',
      /tensor_model_parallel_size: is 2/,
    ],
    [config.replace('- mlp', '- lm_head'), 'ADAPTER_UNSUPPORTED_TARGET', /module 'lm_head'/],
    [config.replace('num_query_groups: 2', 'num_query_groups: 4'), 'ADAPTER_BASE_MISMATCH', /num_query_groups is 4/],
    [config.replace('adapter_dim: 8', 'adapter_dim: 4'), 'ADAPTER_TENSOR_SHAPE', /adapter_dim 4/],
    [config.replace('alpha: 16', `alpha: ${OMEGACONF_RESOLVER}`), 'ADAPTER_INVALID_CONFIG', /cannot resolve/],
    [config.replace('- mlp', ''), 'ADAPTER_TENSOR_UNEXPECTED', /does not target/],
    [config.replace('variant: nemo', 'variant: canonical'), 'ADAPTER_TENSOR_UNEXPECTED', /variant canonical/],
    [config.replace('peft:', 'peft: [').concat(']'), 'ADAPTER_INVALID_CONFIG', /not valid YAML/],
    [config.replace(/peft:[\s\S]*/, ''), 'ADAPTER_INVALID_CONFIG', /peft_scheme: is missing/],
  ];
  for (const [text, code, pattern] of cases) {
    assert.notEqual(text, config, `${pattern}: the replacement changed nothing`);
    const dir = await nemoWith([
      ['./model_config.yaml', Buffer.from(text)],
      ['./model_weights.ckpt', weights],
    ]);
    await refusedWith(dir, llama, code, pattern);
  }
});

test('a .nemo for another base model is refused as a base mismatch: by its recorded sizes, else by tensor shapes', async () => {
  const { config, weights } = await members('phi3', 'fused-all');
  const qwen3 = await baseOf('qwen3'); // head_dim 24, where Phi-3's is 16
  const withSizes = await nemoWith([
    ['./model_config.yaml', Buffer.from(config)],
    ['./model_weights.ckpt', weights],
  ]);
  await refusedWith(
    withSizes,
    qwen3,
    'ADAPTER_BASE_MISMATCH',
    /kv_channels is 16, but the base model's head_dim is 24/,
  );
  const sizes = /^(hidden_size|ffn_hidden_size|num_attention_heads|num_query_groups|kv_channels|num_layers): .*\n/gm;
  const withoutSizes = await nemoWith([
    ['./model_config.yaml', Buffer.from(config.replace(sizes, ''))],
    ['./model_weights.ckpt', weights],
  ]);
  await refusedWith(
    withoutSizes,
    qwen3,
    'ADAPTER_BASE_MISMATCH',
    /lora_kqv_adapter\.linear_out\.weight' has shape \[128, 8\]/,
  );
});

test('a model_weights.ckpt whose pickle calls os.system is refused by name; the command never runs', async () => {
  const { config } = await members('llama-tied', 'fused-all');
  const evil = readFileSync(join(ROOT, 'pickle', 'runs-code.pt'));
  rmSync('/tmp/loraplex-pickle-ran', { force: true }); // what the pickle's command would create
  const dir = await nemoWith([
    ['./model_config.yaml', Buffer.from(config)],
    ['./model_weights.ckpt', evil],
  ]);
  await refusedWith(
    dir,
    await baseOf('llama-tied'),
    'ADAPTER_WEIGHTS_INVALID',
    /'posix\.system'.*nothing in the file was run/,
  );
  assert.equal(existsSync('/tmp/loraplex-pickle-ran'), false);
});

test('archives that are not what NeMo saves: missing members, shards, two .nemo files, not a tar', async () => {
  const llama = await baseOf('llama-tied');
  const { config, weights } = await members('llama-tied', 'fused-all');
  await refusedWith(
    await nemoWith([['./model_config.yaml', Buffer.from(config)]]),
    llama,
    'ADAPTER_FILE_MISSING',
    /model_weights\.ckpt/,
  );
  await refusedWith(
    await nemoWith([
      ['./model_config.yaml', Buffer.from(config)],
      ['./mp_rank_00/model_weights.ckpt', weights],
    ]),
    llama,
    'ADAPTER_UNSUPPORTED_FEATURE',
    /tensor-parallel shards/,
  );
  const two = await nemoWith([['./model_config.yaml', Buffer.from(config)]]);
  await writeFile(join(two, 'second.nemo'), 'x');
  await refusedWith(two, llama, 'ADAPTER_INVALID_CONFIG', /2 \.nemo files/);
  const text = await dirs.make();
  await writeFile(
    join(text, 'a.nemo'),
    'not an archive at all, just some text that is long enough to fill a block'.repeat(10),
  );
  await refusedWith(text, llama, 'ADAPTER_WEIGHTS_INVALID', /not a tar archive/);
});

test('seeded damage to a .nemo ends in a loaded adapter or a catalogue error, never a crash or a path', async () => {
  const llama = await baseOf('llama-tied');
  const original = await readFile(join(nemoDir('llama-tied', 'qkv-bf16-layer2'), 'qkv-bf16-layer2.nemo'));
  const rng = new BenchRandom(20261204);
  const dir = await dirs.make();
  const file = join(dir, 'a.nemo');
  const codes = new Map<string, number>();
  for (let i = 0; i < 150; i++) {
    await writeFile(file, mutateBytes(rng, original));
    try {
      await loadNemoAdapter(dir, llama, { maxLoraRank: 64, name: 'fz' });
      codes.set('loaded', (codes.get('loaded') ?? 0) + 1);
    } catch (e) {
      assert.ok(isLoraplexError(e), `mutation ${i}: ${(e as Error).stack}`);
      assert.ok(!e.message.includes(dir), e.message);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
  }
  assert.ok((codes.get('ADAPTER_WEIGHTS_INVALID') ?? 0) > 0, JSON.stringify([...codes]));
});
