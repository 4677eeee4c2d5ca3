import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { f32ToBf16, toF32Array } from '../../src/kernels/dtype.ts';
import { ConfigError } from '../../src/model/config-parse.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsError, writeSafetensors } from '../../src/model/safetensors.ts';
import { WeightsError } from '../../src/model/weights.ts';
import {
  encodeTensor,
  TINY,
  type TinyModelOptions,
  tinyConfig,
  tinyTensors,
  writeTinyModel,
} from './tiny-model-dir.ts';

const root = await mkdtemp(join(tmpdir(), 'loraplex-model-dir-'));
after(() => rm(root, { recursive: true, force: true }));
let count = 0;

async function emptyDir() {
  const dir = join(root, `m${count++}`);
  await mkdir(dir);
  return dir;
}

async function tinyDir(o: TinyModelOptions = {}) {
  const dir = await emptyDir();
  const written = await writeTinyModel(dir, o);
  return { dir, ...written };
}

function byName(encoded: { name: string; data: ArrayBufferView }[], name: string) {
  const t = encoded.find((e) => e.name === name);
  assert.ok(t, name);
  return t.data;
}

async function rejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => Error,
  code: string | null,
  ...fragments: string[]
) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    if (code !== null) assert.equal((e as { code?: string }).code, code);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention ${f}`);
    return true;
  });
}

describe('loadModelDir: loads', () => {
  test('f32 untied Llama: every tensor in place, values exact, no biases', async () => {
    const { dir, tensors } = await tinyDir();
    const m = await loadModelDir(dir);
    assert.equal(m.dir, dir);
    assert.equal(m.config.family, 'llama');
    assert.equal(m.config.dtype, 'f32');
    const w = m.weights;
    assert.equal(w.layers.length, TINY.layers);
    const value = (name: string) => tensors.find((t) => t.name === name)?.values;
    assert.deepEqual(w.embedding, {
      dtype: 'f32',
      rows: TINY.vocab,
      cols: TINY.hidden,
      data: value('model.embed_tokens.weight'),
    });
    assert.notEqual(w.lmHead, w.embedding);
    assert.deepEqual(w.lmHead.data, value('lm_head.weight'));
    assert.deepEqual(w.finalNorm, value('model.norm.weight'));
    const { linear: p, norms, bias } = w.layers[1];
    assert.deepEqual([p.q_proj?.rows, p.q_proj?.cols], [TINY.heads * TINY.headDim, TINY.hidden]);
    assert.deepEqual([p.k_proj?.rows, p.v_proj?.rows, p.o_proj?.rows, p.o_proj?.cols], [8, 8, TINY.hidden, 16]);
    assert.deepEqual([p.gate_proj?.rows, p.up_proj?.rows, p.down_proj?.rows, p.down_proj?.cols], [24, 24, 16, 24]);
    assert.deepEqual(p.down_proj?.data, value('model.layers.1.mlp.down_proj.weight'));
    assert.deepEqual(norms.input_layernorm, value('model.layers.1.input_layernorm.weight'));
    assert.deepEqual(norms.post_attention_layernorm, value('model.layers.1.post_attention_layernorm.weight'));
    assert.deepEqual(bias, {});
  });

  test('bf16 tied: lm_head is the embedding object, matrices stay raw bf16, norms become f32', async () => {
    const { dir, encoded } = await tinyDir({ dtype: 'BF16', tied: true });
    const m = await loadModelDir(dir);
    assert.equal(m.config.dtype, 'bf16');
    assert.equal(m.weights.lmHead, m.weights.embedding);
    assert.equal(m.weights.embedding.dtype, 'bf16');
    assert.deepEqual(
      m.weights.layers[0].linear.q_proj?.data,
      byName(encoded, 'model.layers.0.self_attn.q_proj.weight'),
    );
    const norm = byName(encoded, 'model.norm.weight') as Uint16Array;
    assert.deepEqual(m.weights.finalNorm, toF32Array('bf16', norm));
  });

  test('f16 Qwen2: q/k/v biases converted to f32, no o_proj bias', async () => {
    const { dir, encoded } = await tinyDir({ family: 'qwen2', dtype: 'F16' });
    const m = await loadModelDir(dir);
    assert.equal(m.config.family, 'qwen2');
    const l0 = m.weights.layers[0];
    assert.equal(l0.linear.k_proj?.dtype, 'f16');
    assert.ok(l0.linear.k_proj?.data instanceof Uint16Array);
    assert.deepEqual(
      l0.bias.k_proj,
      toF32Array('f16', byName(encoded, 'model.layers.0.self_attn.k_proj.bias') as Uint16Array),
    );
    assert.equal(l0.bias.q_proj?.length, 16);
    assert.equal(l0.bias.v_proj?.length, 8);
    assert.equal(l0.bias.o_proj, undefined);
  });

  test('Llama attention_bias: q/k/v and o_proj biases', async () => {
    const { dir } = await tinyDir({ attentionBias: true });
    const l0 = (await loadModelDir(dir)).weights.layers[0];
    const { bias } = l0;
    assert.deepEqual(
      [bias.q_proj?.length, bias.k_proj?.length, bias.v_proj?.length, bias.o_proj?.length],
      [16, 8, 8, 16],
    );
  });

  test('Mistral loads with its sliding window', async () => {
    const { dir } = await tinyDir({ family: 'mistral' });
    const m = await loadModelDir(dir);
    assert.equal(m.config.slidingWindow, 32);
    assert.equal(m.weights.layers[0].bias.q_proj, undefined);
    assert.deepEqual(m.config.layerTypes, ['sliding', 'sliding']);
  });

  test('sharded with an index loads the same weights as one file', async () => {
    const one = await loadModelDir((await tinyDir({ dtype: 'BF16' })).dir);
    const sharded = await loadModelDir((await tinyDir({ dtype: 'BF16', shards: 3 })).dir);
    assert.deepEqual(sharded.weights, one.weights);
  });

  test('f32 checkpoint loaded as bf16 rounds each value to nearest even', async () => {
    const { dir, tensors } = await tinyDir();
    const m = await loadModelDir(dir, { dtype: 'bf16' });
    assert.equal(m.config.dtype, 'bf16');
    const up = tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!.values;
    assert.deepEqual(m.weights.layers[1].linear.up_proj?.data, Uint16Array.from(up, f32ToBf16));
    assert.equal(m.weights.finalNorm.constructor, Float32Array);
  });

  test('bf16 checkpoint loaded as f32 widens exactly', async () => {
    const { dir, encoded } = await tinyDir({ dtype: 'BF16' });
    const m = await loadModelDir(dir, { dtype: 'f32' });
    const emb = byName(encoded, 'model.embed_tokens.weight') as Uint16Array;
    assert.deepEqual(m.weights.embedding, { dtype: 'f32', rows: 32, cols: 16, data: toF32Array('bf16', emb) });
  });

  test('rotary inv_freq buffers and a tied model’s redundant lm_head are ignored', async () => {
    const dir = await emptyDir();
    const { config } = await writeTinyModel(dir, { tied: true });
    const tensors = tinyTensors({ tied: true }).map((t) => encodeTensor(t.name, t.shape, t.values, 'F32'));
    tensors.push(encodeTensor('model.layers.0.self_attn.rotary_emb.inv_freq', [2], new Float32Array(2), 'F32'));
    tensors.push(encodeTensor('lm_head.weight', [32, 16], new Float32Array(32 * 16), 'F32'));
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    const m = await loadModelDir(dir);
    assert.equal(m.weights.lmHead, m.weights.embedding);
    assert.equal(config.tie_word_embeddings, true);
  });
});

describe('loadModelDir: refuses', () => {
  async function withTensors(
    edit: (ts: ReturnType<typeof tinyTensors>) => ReturnType<typeof tinyTensors>,
    o: TinyModelOptions = {},
  ) {
    const { dir } = await tinyDir(o);
    const tensors = edit(tinyTensors(o)).map((t) => encodeTensor(t.name, t.shape, t.values, 'F32'));
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return dir;
  }

  test('a missing tensor, naming it, its expected shape and the hint', async () => {
    const dir = await withTensors((ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.gate_proj.weight'));
    await rejectsWith(
      loadModelDir(dir),
      WeightsError,
      'weights_missing_tensor',
      'model.safetensors',
      "'model.layers.1.mlp.gate_proj.weight' [24, 16]",
      'config.json',
      'hint',
    );
  });

  test('a missing lm_head suggests tie_word_embeddings', async () => {
    const dir = await withTensors((ts) => ts.filter((t) => t.name !== 'lm_head.weight'));
    await rejectsWith(
      loadModelDir(dir),
      WeightsError,
      'weights_missing_tensor',
      'lm_head.weight',
      'tie_word_embeddings',
    );
  });

  test('a wrong shape, naming the file, tensor, both shapes and the hint', async () => {
    const dir = await withTensors((ts) =>
      ts.map((t) => (t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [16, 8] } : t)),
    );
    await rejectsWith(
      loadModelDir(dir),
      WeightsError,
      'weights_shape_mismatch',
      join(dir, 'model.safetensors'),
      'k_proj',
      '[16, 8]',
      'expected [8, 16]',
      'hint',
    );
  });

  test('tensors the config does not describe (more layers, biases it lacks)', async () => {
    const extraLayer = await withTensors((ts) => [
      ...ts,
      { name: 'model.layers.2.input_layernorm.weight', shape: [16], values: new Float32Array(16) },
    ]);
    await rejectsWith(
      loadModelDir(extraLayer),
      WeightsError,
      'weights_unexpected_tensor',
      'model.layers.2.input_layernorm.weight',
      'hint',
    );
    const { dir } = await tinyDir({ attentionBias: true });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, attention_bias: false }));
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_unexpected_tensor', 'q_proj.bias');
  });

  test('a non-float weight tensor', async () => {
    const { dir } = await tinyDir();
    const tensors = tinyTensors().map((t) =>
      t.name === 'model.norm.weight'
        ? { name: t.name, dtype: 'I32' as const, shape: t.shape, data: new Int32Array(16) }
        : encodeTensor(t.name, t.shape, t.values, 'F32'),
    );
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_dtype_unsupported', 'model.norm.weight', 'I32');
  });

  test('an unsupported architecture or rope type (ConfigError naming config.json)', async () => {
    const gpt2 = await tinyDir({ config: { architectures: ['GPT2LMHeadModel'] } });
    await rejectsWith(
      loadModelDir(gpt2.dir),
      ConfigError,
      'config_unsupported',
      join(gpt2.dir, 'config.json'),
      'GPT2LMHeadModel',
    );
    const yarn = await tinyDir({ config: { rope_scaling: { rope_type: 'yarn', factor: 4 } } });
    await rejectsWith(loadModelDir(yarn.dir), ConfigError, 'config_unsupported', 'rope_scaling.rope_type', 'yarn');
  });

  test('a missing or unparsable config.json', async () => {
    const { dir } = await tinyDir();
    await writeFile(join(dir, 'config.json'), '{ not json');
    await rejectsWith(loadModelDir(dir), ConfigError, 'config_invalid', 'config.json', 'not valid JSON');
    await rejectsWith(loadModelDir(join(root, 'nowhere')), ConfigError, 'config_invalid', 'cannot read');
  });

  test('pickle checkpoints, with how to convert', async () => {
    const dir = await emptyDir();
    await writeFile(join(dir, 'config.json'), JSON.stringify(tinyConfig()));
    await writeFile(join(dir, 'pytorch_model.bin'), Buffer.from('PK\x03\x04 pickle'));
    await rejectsWith(
      loadModelDir(dir),
      WeightsError,
      'weights_format_unsupported',
      'pytorch_model.bin',
      'pickle',
      'safetensors',
      'save_pretrained',
    );
  });

  test('no weights at all', async () => {
    const { dir } = await tinyDir();
    await rm(join(dir, 'model.safetensors'));
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_not_found', 'model.safetensors');
  });

  test('a truncated safetensors file (header past the end)', async () => {
    const { dir } = await tinyDir();
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, 40));
    await rejectsWith(loadModelDir(dir), SafetensorsError, null, path, 'truncated');
  });

  test('a truncated safetensors file (data cut short)', async () => {
    const { dir } = await tinyDir();
    const path = join(dir, 'model.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 100));
    await rejectsWith(loadModelDir(dir), SafetensorsError, null, path, 'truncated');
  });

  test('an oversize header length', async () => {
    const { dir } = await tinyDir();
    const header = Buffer.alloc(16);
    header.writeBigUInt64LE(1n << 40n, 0);
    await writeFile(join(dir, 'model.safetensors'), header);
    await rejectsWith(loadModelDir(dir), SafetensorsError, null, 'exceeds');
  });

  test('a shard index that points elsewhere or disagrees with the shards', async () => {
    const { dir } = await tinyDir({ shards: 2 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    const [first, second] = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const other = index.weight_map['model.norm.weight'] === first ? second : first;
    await writeFile(indexPath, JSON.stringify({ weight_map: { ...index.weight_map, 'model.norm.weight': other } }));
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_index_invalid', 'model.norm.weight');
    await writeFile(
      indexPath,
      JSON.stringify({ weight_map: { ...index.weight_map, 'model.norm.weight': '../x.safetensors' } }),
    );
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_index_invalid', '../x.safetensors', 'same folder');
    await writeFile(indexPath, JSON.stringify({ metadata: {} }));
    await rejectsWith(loadModelDir(dir), WeightsError, 'weights_index_invalid', 'weight_map');
  });
});
