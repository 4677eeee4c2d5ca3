// Expected sets were checked against PEFT 0.21.2's get_peft_model on Llama models of the same depth.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePeftAdapterConfig } from '../../src/adapters/peft/adapter-config.ts';
import {
  baseModules,
  findMinimalTargetModules,
  patternValue,
  resolveTargetedModules,
} from '../../src/adapters/peft/targeting.ts';
import { assertThrows, peftConfig } from './helpers.ts';

const FILE = 'adapter_config.json';

function targeted(overrides: Record<string, unknown>, numLayers = 2, prefix = 'model.'): string[] {
  const config = parsePeftAdapterConfig(JSON.stringify(peftConfig(overrides)), FILE);
  return resolveTargetedModules(config, baseModules(numLayers, prefix), 'llama').map((m) => m.name);
}

const L = (layer: number, rest: string) => `model.layers.${layer}.${rest}`;

describe('PEFT target_modules semantics', () => {
  test('a list matches exact names and dot-bounded suffixes', () => {
    assert.deepEqual(targeted({ target_modules: ['q_proj', 'mlp.down_proj', 'model.layers.1.self_attn.o_proj'] }), [
      L(0, 'self_attn.q_proj'),
      L(0, 'mlp.down_proj'),
      L(1, 'self_attn.q_proj'),
      L(1, 'self_attn.o_proj'),
      L(1, 'mlp.down_proj'),
    ]);
    assert.deepEqual(targeted({ target_modules: ['proj'] }), [], '"proj" is not a dot-bounded suffix of q_proj');
  });

  test('a string is a regex that must match the whole name', () => {
    assert.deepEqual(
      targeted({ target_modules: '.*\\.layers\\.0\\.self_attn\\.(k_proj|o_proj)|.*\\.layers\\.1\\.mlp\\.down_proj' }),
      [L(0, 'self_attn.k_proj'), L(0, 'self_attn.o_proj'), L(1, 'mlp.down_proj')],
    );
    assert.deepEqual(targeted({ target_modules: 'q_proj' }), [], 'a regex is not a suffix match');
    assert.deepEqual(targeted({ target_modules: '.*layers\\.(?P<n>1)\\.self_attn\\.q_proj' }), [
      L(1, 'self_attn.q_proj'),
    ]);
  });

  test('"all-linear" is the seven projections of every layer, never lm_head', () => {
    const names = targeted({ target_modules: 'all-linear' }, 3);
    assert.equal(names.length, 21);
    assert.ok(!names.includes('lm_head'));
  });

  test('null target_modules falls back to PEFT default for Llama (q_proj, v_proj)', () => {
    assert.deepEqual(targeted({ target_modules: null }, 1), [L(0, 'self_attn.q_proj'), L(0, 'self_attn.v_proj')]);
  });

  test('layers_to_transform selects layers, with or without layers_pattern', () => {
    assert.deepEqual(
      targeted({ target_modules: ['q_proj', 'v_proj'], layers_to_transform: [1], layers_pattern: 'layers' }),
      [L(1, 'self_attn.q_proj'), L(1, 'self_attn.v_proj')],
    );
    assert.deepEqual(targeted({ target_modules: ['q_proj', 'down_proj'], layers_to_transform: 2 }, 3), [
      L(2, 'self_attn.q_proj'),
      L(2, 'mlp.down_proj'),
    ]);
    assert.deepEqual(targeted({ target_modules: ['q_proj'], layers_to_transform: [0], layers_pattern: 'blocks' }), []);
  });

  test('an exact full name skips the layer filter, unless PEFT condensed a list of 20 or more', () => {
    const fullNames = (layers: number[]) =>
      layers.flatMap((l) => ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((k) => L(l, `self_attn.${k}`)));
    // 8 names: matched exactly, layers_to_transform ignored
    assert.equal(targeted({ target_modules: fullNames([0, 1]), layers_to_transform: [1] }, 2).length, 8);
    // 20 names for layers 0..4 of a 5-layer model condense to the kind names: the filter applies
    assert.deepEqual(
      targeted({ target_modules: fullNames([0, 1, 2, 3, 4]), layers_to_transform: [1] }, 5),
      fullNames([1]),
    );
    // 20 names for layers 0..4 of a 6-layer model cannot condense (layer 5 shares the suffixes): no filter
    assert.equal(targeted({ target_modules: fullNames([0, 1, 2, 3, 4]), layers_to_transform: [1] }, 6).length, 20);
  });

  test('exclude_modules removes names (list: exact or suffix; string: full regex)', () => {
    const all = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const listed = targeted({
      target_modules: all,
      exclude_modules: ['mlp.up_proj', 'model.layers.0.self_attn.q_proj'],
    });
    assert.equal(listed.length, 11);
    assert.ok(!listed.includes(L(0, 'self_attn.q_proj')) && listed.includes(L(1, 'self_attn.q_proj')));
    assert.deepEqual(
      targeted({ target_modules: all, exclude_modules: '.*layers\\.1\\..*' }),
      all.map((k) => L(0, `${['gate_proj', 'up_proj', 'down_proj'].includes(k) ? 'mlp' : 'self_attn'}.${k}`)),
    );
  });

  test('non-projection modules are returned so the loader can refuse them by name', () => {
    assert.deepEqual(targeted({ target_modules: ['embed_tokens', 'lm_head'] }, 1), ['model.embed_tokens', 'lm_head']);
  });

  test('a bare decoder (prefix "") has no lm_head and the default layer regex finds no index', () => {
    assert.deepEqual(targeted({ target_modules: ['q_proj'] }, 1, ''), ['layers.0.self_attn.q_proj']);
    assert.deepEqual(targeted({ target_modules: ['q_proj'], layers_to_transform: [0] }, 1, ''), []);
  });

  test('an unreadable regex is a config error naming the field', () =>
    assertThrows(
      () => targeted({ target_modules: '(q_proj' }),
      'ADAPTER_INVALID_CONFIG',
      'target_modules',
      '"(q_proj"',
    ));
});

describe('PEFT rank_pattern / alpha_pattern matching (get_pattern_key)', () => {
  const patterns: [string, number][] = [
    ['q_proj', 2],
    ['mlp.down_proj', 12],
    ['model.layers.1.mlp.up_proj', 6],
    ['layers.0.self_attn.k_proj', 20],
    ['.*\\.1\\.self_attn\\.(v|o)_proj', 7],
  ];
  const value = (key: string) => patternValue(patterns, key, FILE, 'rank_pattern')?.value ?? null;

  test('a key matches a dot-bounded tail of the module name, as a regex', () => {
    assert.equal(value(L(0, 'self_attn.q_proj')), 2);
    assert.equal(value(L(1, 'mlp.down_proj')), 12);
    assert.equal(value(L(1, 'mlp.up_proj')), 6);
    assert.equal(value(L(0, 'mlp.up_proj')), null);
    assert.equal(value(L(0, 'self_attn.k_proj')), 20);
    assert.equal(value(L(1, 'self_attn.k_proj')), null);
    assert.equal(value(L(1, 'self_attn.o_proj')), 7);
    assert.equal(value(L(0, 'self_attn.o_proj')), null);
  });

  test('the first matching key wins, in file order', () => {
    const first = patternValue(
      [
        ['proj', 1],
        ['self_attn.q_proj', 3],
        ['q_proj', 5],
      ],
      L(0, 'self_attn.q_proj'),
      FILE,
      'rank_pattern',
    );
    assert.deepEqual(first, { value: 3, pattern: 'self_attn.q_proj' });
  });
});

test('findMinimalTargetModules condenses like PEFT', () => {
  const targets = new Set(
    [0, 1, 2].flatMap((i) => [`model.layers.${i}.self_attn.q_proj`, `model.layers.${i}.self_attn.v_proj`]),
  );
  const others = new Set([0, 1, 2].map((i) => `model.layers.${i}.self_attn.k_proj`));
  assert.deepEqual([...findMinimalTargetModules(targets, others)].sort(), ['q_proj', 'v_proj']);
});
