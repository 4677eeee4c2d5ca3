import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, parseModelConfig } from '../../src/model/config-parse.ts';

const SOURCE = '/models/x/config.json';

// Abridged from the published config.json of each model (transformers 4.x layout).
const llama32: Record<string, unknown> = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

const smollm2 = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  intermediate_size: 1536,
  max_position_embeddings: 8192,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 49152,
};

const mistral = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};

const qwen25 = {
  architectures: ['Qwen2ForCausalLM'],
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_sliding_window: false,
  vocab_size: 151936,
};

function rejects(json: unknown, code: string, ...fragments: string[]) {
  assert.throws(
    () => parseModelConfig(json, SOURCE),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
      assert.equal(e.code, code);
      assert.ok(e.message.startsWith(SOURCE), e.message);
      for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention ${f}`);
      return true;
    },
  );
}

describe('parseModelConfig: supported families', () => {
  test('Llama 3.2 with llama3 rope scaling, tied embeddings and an eos list', () => {
    assert.deepEqual(parseModelConfig(llama32, SOURCE), {
      family: 'llama',
      architecture: 'LlamaForCausalLM',
      vocabSize: 128256,
      hiddenSize: 2048,
      intermediateSize: 8192,
      numLayers: 16,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: {
        type: 'llama3',
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8192,
      },
      maxPositionEmbeddings: 131072,
      tieWordEmbeddings: true,
      attentionBias: false,
      mlpBias: false,
      slidingWindow: null,
      layerTypes: Array(16).fill('full'),
      localRope: null,
      hiddenActivation: 'silu',
      attentionScale: 64 ** -0.5,
      attnLogitSoftcap: null,
      finalLogitSoftcap: null,
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
      dtype: 'bf16',
    });
  });

  test('transformers 5 layout: rope_parameters and dtype give the same config', () => {
    const { rope_scaling, rope_theta, torch_dtype, ...rest } = llama32;
    const v5 = { ...rest, dtype: 'bfloat16', rope_parameters: { ...(rope_scaling as object), rope_theta } };
    assert.deepEqual(parseModelConfig(v5, SOURCE), parseModelConfig(llama32, SOURCE));
    const plain = parseModelConfig({ ...smollm2, rope_parameters: { rope_theta: 5e5, rope_type: 'default' } }, SOURCE);
    assert.equal(plain.ropeTheta, 5e5);
    assert.equal(plain.ropeScaling, null);
  });

  test("legacy rope_scaling 'type' key is read like rope_type", () => {
    const rs = {
      type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const scaling = parseModelConfig({ ...llama32, rope_scaling: rs }, SOURCE).ropeScaling;
    assert.equal(scaling?.type === 'llama3' && scaling.factor, 8);
  });

  test('SmolLM2: head_dim defaults to hidden/heads, rope_scaling null, single eos id', () => {
    const c = parseModelConfig(smollm2, SOURCE);
    assert.equal(c.headDim, 64);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.ropeTheta, 100000);
    assert.deepEqual(c.eosTokenIds, [0]);
    assert.equal(c.bosTokenId, 0);
    assert.equal(c.tieWordEmbeddings, true);
  });

  test('Llama attention_bias turns on projection biases', () => {
    assert.equal(parseModelConfig({ ...smollm2, attention_bias: true }, SOURCE).attentionBias, true);
  });

  test('Mistral: sliding_window kept, or null for full attention', () => {
    const c = parseModelConfig(mistral, SOURCE);
    assert.equal(c.family, 'mistral');
    assert.equal(c.slidingWindow, 4096);
    assert.equal(c.attentionBias, false);
    assert.equal(c.headDim, 128);
    assert.equal(parseModelConfig({ ...mistral, sliding_window: null, head_dim: null }, SOURCE).slidingWindow, null);
  });

  test('Qwen2: q/k/v biases always, sliding_window ignored when use_sliding_window is false', () => {
    const c = parseModelConfig(qwen25, SOURCE);
    assert.equal(c.family, 'qwen2');
    assert.equal(c.attentionBias, true);
    assert.equal(c.slidingWindow, null);
    assert.equal(c.headDim, 64);
    assert.equal(c.ropeTheta, 1e6);
    assert.deepEqual(c.eosTokenIds, [151645]);
  });

  test('model_type names the family when architectures is absent; dtype defaults to f32', () => {
    const { architectures, torch_dtype, ...rest } = qwen25;
    const c = parseModelConfig({ ...rest, eos_token_id: null, bos_token_id: null }, SOURCE);
    assert.equal(c.architecture, 'Qwen2ForCausalLM');
    assert.equal(c.dtype, 'f32');
    assert.deepEqual(c.eosTokenIds, []);
    assert.equal(c.bosTokenId, null);
  });

  test('float16 and float32 dtypes', () => {
    assert.equal(parseModelConfig({ ...smollm2, torch_dtype: 'float16' }, SOURCE).dtype, 'f16');
    assert.equal(parseModelConfig({ ...smollm2, torch_dtype: undefined, dtype: 'float32' }, SOURCE).dtype, 'f32');
  });
});

describe('parseModelConfig: refusals name the file, the field, the value and what is supported', () => {
  test('unsupported architecture', () => {
    rejects(
      { ...smollm2, architectures: ['GPT2LMHeadModel'] },
      'config_unsupported',
      "'architectures'",
      'GPT2LMHeadModel',
      'LlamaForCausalLM',
    );
    const { architectures, ...rest } = smollm2;
    rejects({ ...rest, model_type: 'gemma' }, 'config_unsupported', "'model_type'", '"gemma"', 'llama');
    rejects({ ...smollm2, architectures: ['constructor'] }, 'config_unsupported', "'architectures'");
    rejects({ ...smollm2, torch_dtype: 'toString' }, 'config_unsupported', "'torch_dtype'");
  });

  test('rope types other than default and llama3', () => {
    rejects(
      { ...smollm2, rope_scaling: { rope_type: 'yarn', factor: 4 } },
      'config_unsupported',
      'rope_scaling.rope_type',
      '"yarn"',
      'llama3',
    );
    rejects(
      { ...smollm2, rope_scaling: { type: 'dynamic', factor: 2 } },
      'config_unsupported',
      'rope_scaling.type',
      '"dynamic"',
    );
    rejects(
      { ...smollm2, rope_parameters: { rope_type: 'yarn', factor: 2, rope_theta: 1e4 } },
      'config_unsupported',
      'rope_parameters.rope_type',
      '"yarn"',
    );
  });

  test('linear rope scaling', () => {
    const c = parseModelConfig(
      { ...smollm2, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 1e4 } },
      SOURCE,
    );
    assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 2 });
  });

  test('llama3 scaling with a missing parameter', () => {
    const rs = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 };
    rejects(
      { ...smollm2, rope_scaling: rs },
      'config_invalid',
      'rope_scaling.original_max_position_embeddings',
      'missing',
    );
  });

  test('partial rotary factor', () => {
    rejects({ ...smollm2, partial_rotary_factor: 0.5 }, 'config_unsupported', 'partial_rotary_factor', '0.5');
  });

  test('activation other than silu', () => {
    rejects({ ...smollm2, hidden_act: 'gelu' }, 'config_unsupported', "'hidden_act'", '"gelu"', '"silu"');
  });

  test('Llama mlp_bias', () => {
    rejects({ ...smollm2, mlp_bias: true }, 'config_unsupported', "'mlp_bias'", 'true');
  });

  test('Qwen2 sliding windows', () => {
    rejects({ ...qwen25, use_sliding_window: true }, 'config_unsupported', "'use_sliding_window'");
    const layers = qwen25.num_hidden_layers as number;
    const layerTypes = Array.from({ length: layers }, (_, i) => (i === 1 ? 'sliding_attention' : 'full_attention'));
    rejects({ ...qwen25, layer_types: layerTypes, sliding_window: 8 }, 'config_unsupported', "'layer_types'");
  });

  test('quantized checkpoints', () => {
    rejects(
      { ...smollm2, quantization_config: { quant_method: 'gptq' } },
      'config_unsupported',
      'quantization_config',
      'gptq',
    );
  });

  test('unknown dtype', () => {
    rejects({ ...smollm2, torch_dtype: 'int8' }, 'config_unsupported', "'torch_dtype'", '"int8"', 'bfloat16');
  });

  test('missing or malformed sizes', () => {
    const { hidden_size, ...rest } = smollm2;
    rejects(rest, 'config_invalid', "'hidden_size'", 'missing', 'positive integer');
    rejects({ ...smollm2, num_hidden_layers: '30' }, 'config_invalid', "'num_hidden_layers'", '"30"');
    rejects({ ...smollm2, num_key_value_heads: 4 }, 'config_invalid', "'num_key_value_heads'", 'divisor');
    rejects({ ...smollm2, hidden_size: 577 }, 'config_invalid', "'head_dim'", 'not a multiple');
    rejects({ ...smollm2, eos_token_id: [0, 'x'] }, 'config_invalid', "'eos_token_id[1]'");
    rejects([1, 2], 'config_invalid', 'JSON object');
  });
});

test('attention soft-capping: Gemma 2 applies attn_logit_softcapping, Gemma 3 ignores it as transformers does', () => {
  const read = (set: string) =>
    JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'tiny', set, 'model', 'config.json'), 'utf8'));
  const gemma2 = parseModelConfig({ ...read('gemma2'), attn_logit_softcapping: 5 }, SOURCE);
  assert.equal(gemma2.attnLogitSoftcap, 5);
  const gemma3 = parseModelConfig({ ...read('gemma3'), attn_logit_softcapping: 5 }, SOURCE);
  assert.equal(gemma3.attnLogitSoftcap, null);
});
