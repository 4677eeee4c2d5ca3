import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { assertRejects, BASE, everyLayer, loraTensors, peftConfig, TempDirs, tensorName } from './helpers.ts';

const dirs = new TempDirs();
after(() => dirs.cleanup());
const load = (dir: string, maxLoraRank = 64) => loadPeftAdapter(dir, BASE, { maxLoraRank });
const QV = () => loraTensors(everyLayer(['q_proj', 'v_proj'], 4));
const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

describe('loadPeftAdapter: files', () => {
  test('a missing directory is ADAPTER_NOT_FOUND', () =>
    assertRejects(
      () => loadPeftAdapter('/nonexistent/adapters/sql', BASE, { maxLoraRank: 8, name: 'sql' }),
      'ADAPTER_NOT_FOUND',
      "'sql'",
      'no such directory',
    ));

  test('a directory without adapter_config.json', async () => {
    const dir = await dirs.make();
    await assertRejects(() => load(dir), 'ADAPTER_FILE_MISSING', `'${basename(dir)}'`, CONFIG);
  });

  test('malformed adapter_config.json names the file', async () => {
    const dir = await dirs.adapter('{"peft_type": "LORA", "r": ', QV());
    await assertRejects(() => load(dir), 'ADAPTER_INVALID_CONFIG', `'${basename(dir)}': ${CONFIG}`, 'not valid JSON');
  });

  test('no weights at all', async () => {
    const dir = await dirs.adapter(peftConfig());
    await assertRejects(() => load(dir), 'ADAPTER_FILE_MISSING', WEIGHTS);
  });

  for (const file of ['adapter_model.bin', 'adapter_model.pt', 'weights.pth', 'lora.pkl']) {
    test(`only ${file}: refused without being opened`, async () => {
      const dir = await dirs.adapter(peftConfig());
      // A dangling link: opening it would fail with ENOENT, so the refusal proves it was never read.
      await symlink(join(dir, 'does-not-exist'), join(dir, file));
      await assertRejects(
        () => load(dir),
        'ADAPTER_PICKLE_REFUSED',
        `'${basename(dir)}': ${file}`,
        'safe_serialization=True',
      );
    });
  }

  test('safetensors next to a .bin is used, the .bin ignored', async () => {
    const dir = await dirs.adapter(peftConfig(), QV());
    await symlink(join(dir, 'does-not-exist'), join(dir, 'adapter_model.bin'));
    await load(dir);
  });

  test('a damaged safetensors file', async () => {
    const dir = await dirs.adapter(peftConfig());
    await writeFile(join(dir, WEIGHTS), Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    await assertRejects(() => load(dir), 'ADAPTER_WEIGHTS_INVALID', `'${basename(dir)}': ${WEIGHTS}`, 'truncated');
  });

  test('a non-float tensor', async () => {
    const tensors = QV();
    tensors[0] = { ...tensors[0], dtype: 'I32', data: new Int32Array(tensors[0].shape[0] * tensors[0].shape[1]) };
    const dir = await dirs.adapter(peftConfig(), tensors);
    await assertRejects(() => load(dir), 'ADAPTER_WEIGHTS_INVALID', tensors[0].name, 'I32');
  });

  test('an empty safetensors file', async () => {
    const dir = await dirs.adapter(peftConfig(), []);
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_MISSING', WEIGHTS, 'holds no tensors');
  });
});

describe('loadPeftAdapter: config features', () => {
  test('use_dora without magnitude vectors', async () => {
    const dir = await dirs.adapter(peftConfig({ use_dora: true }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_MISSING', 'lora_magnitude_vector', 'use_dora: true');
  });

  test('modules_to_save naming a module that is not served', async () => {
    const dir = await dirs.adapter(peftConfig({ modules_to_save: ['score'] }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_UNSUPPORTED_FEATURE', CONFIG, 'modules_to_save', 'score');
  });

  for (const target of ['embed_tokens', 'lm_head', 'input_layernorm']) {
    test(`target_modules naming ${target}`, async () => {
      const dir = await dirs.adapter(peftConfig({ target_modules: ['q_proj', target] }), QV());
      await assertRejects(
        () => load(dir),
        'ADAPTER_UNSUPPORTED_TARGET',
        CONFIG,
        'target_modules',
        target,
        'q_proj, k_proj',
      );
    });
  }

  test('a regex target matching a non-projection', async () => {
    const dir = await dirs.adapter(peftConfig({ target_modules: '.*(q_proj|norm)' }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_UNSUPPORTED_TARGET', "'model.layers.0.input_layernorm'");
  });

  test('target_modules matching nothing in the base model', async () => {
    const dir = await dirs.adapter(peftConfig({ target_modules: ['query_key_value'] }), QV());
    await assertRejects(
      () => load(dir),
      'ADAPTER_BASE_MISMATCH',
      'query_key_value',
      'maybe wrong base model',
      'tiny/llama',
    );
  });

  test('rank r above maxLoraRank', async () => {
    const dir = await dirs.adapter(peftConfig({ r: 16 }), loraTensors(everyLayer(['q_proj', 'v_proj'], 16)));
    await assertRejects(
      () => load(dir, 8),
      'ADAPTER_RANK_TOO_HIGH',
      CONFIG,
      "rank 16 ('r')",
      'maximum LoRA rank 8',
      '--max-lora-rank 16',
    );
  });

  test('a rank_pattern rank above maxLoraRank', async () => {
    const specs = everyLayer(['q_proj', 'v_proj'], 4).map((s) => (s.kind === 'v_proj' ? { ...s, rank: 32 } : s));
    const dir = await dirs.adapter(peftConfig({ rank_pattern: { v_proj: 32 } }), loraTensors(specs));
    await assertRejects(() => load(dir, 16), 'ADAPTER_RANK_TOO_HIGH', 'rank 32 (rank_pattern["v_proj"])');
  });
});

describe('loadPeftAdapter: tensors', () => {
  async function withTensors(mutate: (t: ReturnType<typeof QV>) => ReturnType<typeof QV>, config = peftConfig()) {
    return dirs.adapter(config, mutate(QV()));
  }
  const extra = (name: string, shape = [4]) => ({
    name,
    dtype: 'F32' as const,
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  });

  test('lora_embedding_A without lora_embedding_B', async () => {
    const dir = await withTensors(
      (t) => [...t, extra('base_model.model.model.embed_tokens.lora_embedding_A', [4, 32])],
      peftConfig({ target_modules: ['q_proj', 'v_proj', 'embed_tokens'] }),
    );
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_MISSING', WEIGHTS, 'no lora_embedding_B');
  });

  test('a saved embedding of a resized vocabulary', async () => {
    const dir = await withTensors((t) => [...t, extra('base_model.model.model.embed_tokens.weight', [40, 8])]);
    await assertRejects(
      () => load(dir),
      'ADAPTER_UNSUPPORTED_FEATURE',
      "'base_model.model.model.embed_tokens.weight'",
      '[40, 8]',
      'resized beyond',
    );
  });

  test('lora_magnitude_vector (DoRA weights) without use_dora', async () => {
    const dir = await withTensors((t) => [
      ...t,
      extra('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector', [12]),
    ]);
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_UNEXPECTED', 'lora_magnitude_vector', 'use_dora');
  });

  test('a lora_B bias', async () => {
    const dir = await withTensors((t) => [
      ...t,
      extra('base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias', [12]),
    ]);
    await assertRejects(() => load(dir), 'ADAPTER_UNSUPPORTED_FEATURE', 'lora_B.bias', 'lora_bias');
  });

  test('a full weight of a module that is not served', async () => {
    const dir = await withTensors((t) => [
      ...t,
      extra('base_model.model.model.layers.0.mlp.gate_proj.weight', [32, 8]),
    ]);
    await assertRejects(
      () => load(dir),
      'ADAPTER_TENSOR_UNEXPECTED',
      "'base_model.model.model.layers.0.mlp.gate_proj.weight'",
      'not a LoRA factor',
    );
  });

  test('LoRA factors on lm_head that the config does not target', async () => {
    const dir = await withTensors((t) => [
      ...t,
      extra('base_model.model.lm_head.lora_A.weight', [4, 8]),
      extra('base_model.model.lm_head.lora_B.weight', [32, 4]),
    ]);
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_UNEXPECTED', "module 'lm_head'", 'does not target');
  });

  test('a module the base model does not have', async () => {
    const dir = await withTensors((t) => [
      ...t,
      extra('base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight', [4, 8]),
    ]);
    await assertRejects(
      () => load(dir),
      'ADAPTER_BASE_MISMATCH',
      "'model.layers.0.self_attn.qkv_proj'",
      'does not exist in the base model',
      'hint: maybe wrong base model',
    );
  });

  test('a layer past the base model', async () => {
    const specs = everyLayer(['q_proj', 'v_proj'], 4, 4);
    const dir = await dirs.adapter(peftConfig(), loraTensors(specs));
    await assertRejects(
      () => load(dir),
      'ADAPTER_BASE_MISMATCH',
      'layer 3',
      'has 3 layers (0..2)',
      "trained on 'tiny/llama'",
    );
  });

  test('fewer layers than the base model', async () => {
    const dir = await dirs.adapter(peftConfig(), loraTensors(everyLayer(['q_proj', 'v_proj'], 4, 2)));
    await assertRejects(() => load(dir), 'ADAPTER_BASE_MISMATCH', 'layers up to 1 only', 'base model has 3 layers');
  });

  test('a different hidden size', async () => {
    const specs = everyLayer(['q_proj', 'v_proj'], 4).map((s) => ({ ...s, inFeatures: 16 }));
    const dir = await dirs.adapter(peftConfig(), loraTensors(specs));
    await assertRejects(
      () => load(dir),
      'ADAPTER_BASE_MISMATCH',
      'q_proj.lora_A.weight',
      '[4, 16]',
      'takes 8 inputs (hidden_size)',
      'maybe wrong base model',
    );
  });

  test('a different number of heads (q_proj outputs)', async () => {
    const specs = everyLayer(['q_proj', 'v_proj'], 4).map((s) => (s.kind === 'q_proj' ? { ...s, outFeatures: 16 } : s));
    const dir = await dirs.adapter(peftConfig(), loraTensors(specs));
    await assertRejects(() => load(dir), 'ADAPTER_BASE_MISMATCH', 'has 12 outputs (num_attention_heads × head_dim)');
  });

  test('a rank that disagrees with the config', async () => {
    const dir = await dirs.adapter(peftConfig({ r: 8 }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_SHAPE', 'q_proj.lora_A.weight', "declares rank 8 ('r')");
  });

  test('A and B of different ranks', async () => {
    const dir = await withTensors((t) =>
      t.map((x) =>
        x.name === tensorName(0, 'q_proj', 'lora_B') ? { ...x, shape: [12, 8], data: new Float32Array(96) } : x,
      ),
    );
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_SHAPE', 'q_proj.lora_B.weight', 'has rank 8', 'rank 4');
  });

  test('a factor that is not a matrix', async () => {
    const dir = await withTensors((t) =>
      t.map((x) => (x.name === tensorName(1, 'v_proj', 'lora_A') ? { ...x, shape: [32] } : x)),
    );
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_SHAPE', 'v_proj.lora_A.weight', 'is a matrix');
  });

  test('an A without its B', async () => {
    const dir = await withTensors((t) => t.filter((x) => x.name !== tensorName(2, 'v_proj', 'lora_B')));
    await assertRejects(
      () => load(dir),
      'ADAPTER_TENSOR_MISSING',
      "'model.layers.2.self_attn.v_proj' has its lora_A but no lora_B",
    );
  });

  test('a targeted module without tensors', async () => {
    const dir = await withTensors((t) => t.filter((x) => !x.name.includes('layers.1.self_attn.v_proj')));
    await assertRejects(
      () => load(dir),
      'ADAPTER_TENSOR_MISSING',
      "module 'model.layers.1.self_attn.v_proj'",
      'target_modules: ["q_proj","v_proj"]',
    );
  });

  test('tensors for a module the config does not target', async () => {
    const dir = await dirs.adapter(peftConfig({ target_modules: ['q_proj'] }), QV());
    await assertRejects(() => load(dir), 'ADAPTER_TENSOR_UNEXPECTED', 'v_proj.lora_A.weight', 'does not target');
  });

  test('two copies of one factor (plain and .default.)', async () => {
    const dup = loraTensors([{ layer: 0, kind: 'q_proj', rank: 4 }], { infix: '.default' });
    const dir = await withTensors((t) => [...t, dup[0]]);
    await assertRejects(
      () => load(dir),
      'ADAPTER_TENSOR_UNEXPECTED',
      'second lora_A',
      "module 'model.layers.0.self_attn.q_proj'",
    );
  });
});

test('a directory whose weights are a folder is reported, not crashed on', async () => {
  const dir = await dirs.adapter(peftConfig());
  await mkdir(join(dir, WEIGHTS));
  await assertRejects(() => load(dir), 'ADAPTER_WEIGHTS_INVALID', WEIGHTS);
});
