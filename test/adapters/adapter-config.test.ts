import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePeftAdapterConfig } from '../../src/adapters/peft/adapter-config.ts';
import type { ErrorCode } from '../../src/observability/errors.ts';
import { assertThrows, peftConfig } from './helpers.ts';

const FILE = '/adapters/sql/adapter_config.json';
const parse = (overrides: Record<string, unknown>) =>
  parsePeftAdapterConfig(JSON.stringify(peftConfig(overrides)), FILE);

describe('adapter_config.json: accepted fields', () => {
  test('reads the LoRA hyper-parameters and records the informational fields', () => {
    const c = parse({
      r: 16,
      lora_alpha: 32,
      use_rslora: true,
      use_dora: true,
      rank_pattern: { q_proj: 8, 'layers.1.mlp.down_proj': 4 },
      alpha_pattern: { o_proj: 3.5 },
      target_modules: ['q_proj', 'o_proj', 'down_proj'],
      exclude_modules: ['layers.0.self_attn.o_proj'],
      layers_to_transform: [0, 2],
      layers_pattern: 'layers',
      base_model_name_or_path: 'meta-llama/Llama-3.2-1B',
      task_type: 'CAUSAL_LM',
      init_lora_weights: 'gaussian',
    });
    assert.equal(c.r, 16);
    assert.equal(c.loraAlpha, 32);
    assert.equal(c.useRslora, true);
    assert.equal(c.useDora, true);
    assert.deepEqual(c.rankPattern, [
      ['q_proj', 8],
      ['layers.1.mlp.down_proj', 4],
    ]);
    assert.deepEqual(c.alphaPattern, [['o_proj', 3.5]]);
    assert.deepEqual(c.targetModules, ['q_proj', 'o_proj', 'down_proj']);
    assert.deepEqual(c.excludeModules, ['layers.0.self_attn.o_proj']);
    assert.deepEqual(c.layersToTransform, [0, 2]);
    assert.equal(c.layersPattern, 'layers');
    assert.equal(c.baseModelNameOrPath, 'meta-llama/Llama-3.2-1B');
    assert.equal(c.taskType, 'CAUSAL_LM');
    assert.equal(c.peftVersion, '0.21.2');
    assert.equal(c.initLoraWeights, 'gaussian');
    assert.equal(c.bias, 'none');
    assert.equal(c.loraDropout, 0.05);
    assert.deepEqual(c.warnings, []);
  });

  test('fills PEFT defaults for absent optional fields', () => {
    const c = parsePeftAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 2 }), FILE);
    assert.equal(c.loraAlpha, 8);
    assert.equal(c.useRslora, false);
    assert.equal(c.useDora, false);
    assert.equal(c.targetModules, null);
    assert.equal(c.layersToTransform, null);
    assert.equal(c.bias, 'none');
    assert.equal(c.taskType, null);
    assert.equal(c.baseModelNameOrPath, null);
  });

  test('takes target_modules as a regex string, "all-linear", and layers_to_transform as one int', () => {
    assert.equal(parse({ target_modules: '.*\\.(q|v)_proj' }).targetModules, '.*\\.(q|v)_proj');
    assert.equal(parse({ target_modules: 'all-linear' }).targetModules, 'all-linear');
    assert.equal(parse({ layers_to_transform: 1 }).layersToTransform, 1);
  });

  test('fan_in_fan_out is turned off as PEFT does for nn.Linear, with a warning naming the file', () => {
    const c = parse({ fan_in_fan_out: true });
    assert.equal(c.fanInFanOut, true);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0], /adapter_config\.json: fan_in_fan_out/);
  });

  test('accepts FEATURE_EXTRACTION adapters and inits that leave the base untouched (eva, mica, false)', () => {
    assert.equal(parse({ task_type: 'FEATURE_EXTRACTION' }).taskType, 'FEATURE_EXTRACTION');
    for (const init of ['eva', 'mica', 'orthogonal', false])
      assert.equal(parse({ init_lora_weights: init }).initLoraWeights, init);
  });
});

describe('adapter_config.json: rejections name the file and the field', () => {
  const cases: [string, Record<string, unknown>, ErrorCode, string[]][] = [
    ['missing r', { r: undefined }, 'ADAPTER_INVALID_CONFIG', ['r: missing']],
    ['r not a positive integer', { r: 0 }, 'ADAPTER_INVALID_CONFIG', ['r: 0 must be a positive integer']],
    ['r a float', { r: 4.5 }, 'ADAPTER_INVALID_CONFIG', ['r: 4.5']],
    ['peft_type missing', { peft_type: undefined }, 'ADAPTER_INVALID_CONFIG', ['peft_type: missing']],
    ['peft_type not LORA', { peft_type: 'IA3' }, 'ADAPTER_UNSUPPORTED_FEATURE', ['peft_type: "IA3"']],
    ['use_dora not a boolean', { use_dora: 'yes' }, 'ADAPTER_INVALID_CONFIG', ['use_dora', 'true or false']],
    [
      'modules_to_save naming a module that is not served',
      { modules_to_save: ['lm_head', 'score'] },
      'ADAPTER_UNSUPPORTED_FEATURE',
      ['modules_to_save', 'score'],
    ],
    ['bias all', { bias: 'all' }, 'ADAPTER_UNSUPPORTED_FEATURE', ['bias: "all"', 'bias="none"']],
    ['bias lora_only', { bias: 'lora_only' }, 'ADAPTER_UNSUPPORTED_FEATURE', ['bias: "lora_only"']],
    ['unknown bias', { bias: 'some' }, 'ADAPTER_INVALID_CONFIG', ['bias: "some"']],
    ['use_qalora', { use_qalora: true }, 'ADAPTER_UNSUPPORTED_FEATURE', ['use_qalora', 'QALoRA']],
    ['aLoRA', { alora_invocation_tokens: [5, 6] }, 'ADAPTER_UNSUPPORTED_FEATURE', ['alora_invocation_tokens']],
    ['VeLoRA', { velora_config: { rank: 1 } }, 'ADAPTER_UNSUPPORTED_FEATURE', ['velora_config']],
    ['BD-LoRA', { use_bdlora: { nblocks: 2 } }, 'ADAPTER_UNSUPPORTED_FEATURE', ['use_bdlora']],
    ['KaSA', { kasa_config: { truncate: true } }, 'ADAPTER_UNSUPPORTED_FEATURE', ['kasa_config', 'KaSA']],
    ['lora_bias', { lora_bias: true }, 'ADAPTER_UNSUPPORTED_FEATURE', ['lora_bias']],
    ['layer_replication', { layer_replication: [[0, 2]] }, 'ADAPTER_UNSUPPORTED_FEATURE', ['layer_replication']],
    ['target_parameters', { target_parameters: ['experts.w1'] }, 'ADAPTER_UNSUPPORTED_FEATURE', ['target_parameters']],
    [
      'trainable tokens on a module other than embed_tokens',
      { trainable_token_indices: { lm_head: [1, 2] } },
      'ADAPTER_UNSUPPORTED_FEATURE',
      ['trainable_token_indices["lm_head"]'],
    ],
    [
      'PiSSA',
      { init_lora_weights: 'pissa_niter_4' },
      'ADAPTER_UNSUPPORTED_FEATURE',
      ['init_lora_weights', 'path_initial_model_for_weight_conversion'],
    ],
    ['LoftQ', { init_lora_weights: 'loftq' }, 'ADAPTER_UNSUPPORTED_FEATURE', ['init_lora_weights', 'LoftQ']],
    ['sequence classification', { task_type: 'SEQ_CLS' }, 'ADAPTER_UNSUPPORTED_FEATURE', ['task_type: "SEQ_CLS"']],
    [
      'regex with layers_to_transform',
      { target_modules: '.*q_proj', layers_to_transform: [0] },
      'ADAPTER_INVALID_CONFIG',
      ['layers_to_transform', 'regex'],
    ],
    ['layers_pattern alone', { layers_pattern: 'layers' }, 'ADAPTER_INVALID_CONFIG', ['layers_pattern']],
    ['rank_pattern value', { rank_pattern: { q_proj: 'big' } }, 'ADAPTER_INVALID_CONFIG', ['rank_pattern["q_proj"]']],
    ['target_modules type', { target_modules: 7 }, 'ADAPTER_INVALID_CONFIG', ['target_modules: 7']],
    ['use_rslora type', { use_rslora: 'yes' }, 'ADAPTER_INVALID_CONFIG', ['use_rslora']],
  ];
  for (const [name, overrides, code, fragments] of cases) {
    test(`${name} → ${code}`, () => assertThrows(() => parse(overrides), code, FILE, ...fragments));
  }

  test('malformed JSON names the file', () =>
    assertThrows(() => parsePeftAdapterConfig('{"r": 8,', FILE), 'ADAPTER_INVALID_CONFIG', FILE, 'not valid JSON'));

  test('a JSON array is not a config', () =>
    assertThrows(() => parsePeftAdapterConfig('[1]', FILE), 'ADAPTER_INVALID_CONFIG', FILE, 'JSON object'));
});
