/**
 * Combinations of adapters with edge modules (kinds/edge-compose.ts). LoRA on embed_tokens / lm_head composes by
 * concatenation: random tables against an f64 reference, and on the engine edge-lora (its save_embedding_layers
 * copies, equal to the base's, left out) as two halves at weight 0.5 serves PEFT's edge-lora logits and greedy
 * tokens (test/fixtures/embedding-adapters), alone and in a mixed batch. Saved copies and trainable tokens are
 * served only as one adapter at weight 1; scaled or mixed they are a 400 naming the adapter and the field.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { AdapterPart } from '../../src/adapters/compose.ts';
import { composeEdges } from '../../src/adapters/kinds/edge-compose.ts';
import type { EdgeModules, LowRankTable } from '../../src/adapters/kinds/edge-modules.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, type GenerationRequest, LLMEngine } from '../../src/engine/llm-engine.ts';
import { weightFormat } from '../../src/kernels/weight-format.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { isLoraplexError } from '../../src/observability/errors.ts';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'embedding-adapters', 'llama3-rope');
const LOGIT_TOLERANCE = 1e-3;

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const table = (rows: number, cols: number, rank: number, scale: number, seed: number): LowRankTable => {
  const rnd = seeded(seed);
  return {
    rank,
    scale,
    a: new Float32Array(rows * rank).map(() => rnd()),
    b: new Float32Array(cols * rank).map(() => rnd()),
  };
};

/** The dense delta a table adds: embedding [V, H] = scale·Aᵀ·Bᵀ; head [V, H] = scale·B·A (f64). */
function dense(t: LowRankTable, kind: 'embedding' | 'head', V: number, H: number): Float64Array {
  const out = new Float64Array(V * H);
  for (let v = 0; v < V; v++) {
    for (let h = 0; h < H; h++) {
      let s = 0;
      for (let j = 0; j < t.rank; j++) {
        s += kind === 'embedding' ? t.a[v * t.rank + j] * t.b[h * t.rank + j] : t.b[v * t.rank + j] * t.a[j * H + h];
      }
      out[v * H + h] = t.scale * s;
    }
  }
  return out;
}

describe('composeEdges', () => {
  const V = 11;
  const H = 6;
  const x: EdgeModules = { embeddingLora: table(V, H, 3, 2, 1), lmHeadLora: table(H, V, 2, 0.5, 2) };
  const y: EdgeModules = { embeddingLora: table(V, H, 1, 4, 3) };
  const z: EdgeModules = { lmHeadLora: table(H, V, 4, 1.5, 4) };
  const parts = [
    { edges: x, weight: 0.7, name: 'x' },
    { edges: y, weight: -1.25, name: 'y' },
    { edges: undefined, weight: 2, name: 'plain' },
    { edges: z, weight: 0.3, name: 'z' },
  ];

  test('embed_tokens and lm_head LoRA deltas are Σ w·s·(their delta) (random tables, ranks add)', () => {
    const mix = composeEdges(parts, 64)!;
    assert.equal(mix.embeddingLora?.rank, 4);
    assert.equal(mix.lmHeadLora?.rank, 6);
    for (const [kind, which] of [
      ['embedding', 'embeddingLora'],
      ['head', 'lmHeadLora'],
    ] as const) {
      const got = dense(mix[which]!, kind, V, H);
      const want = new Float64Array(V * H);
      for (const p of parts) {
        const t = p.edges?.[which];
        if (!t) continue;
        const d = dense(t, kind, V, H);
        for (let i = 0; i < d.length; i++) want[i] += p.weight * d[i];
      }
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5, `${kind} [${i}]`);
    }
  });

  test('none of the parts has edge modules: none; one adapter at weight 1: its own, untouched', () => {
    assert.equal(composeEdges([{ edges: undefined, weight: 0.5, name: 'p' }], 64), undefined);
    const saved: EdgeModules = { finalNorm: new Float32Array(H) };
    assert.equal(composeEdges([{ edges: saved, weight: 1, name: 's' }], 64), saved);
  });

  test('the total rank of embed_tokens over the limit is a 400 naming lora', () => {
    assert.throws(
      () => composeEdges(parts, 3),
      (e) => isLoraplexError(e, 'REQUEST_INVALID') && e.param === 'lora' && /rank 4 on embed_tokens/.test(e.message),
    );
  });

  test('saved copies and trainable tokens, scaled or mixed, are 400s naming the adapter and the field', () => {
    const cases: [EdgeModules, RegExp][] = [
      [{ embedding: new Float32Array(V * H) }, /'s' has a saved copy of embed_tokens \(modules_to_save/],
      [{ lmHead: new Float32Array(V * H) }, /'s' has a saved copy of lm_head/],
      [{ layerNorms: [{ layer: 0, norm: 'attnIn', weight: new Float32Array(H) }] }, /'s' has saved copies of norms/],
      [
        { tokens: { ids: Int32Array.of(1), rows: new Float32Array(H), tiedHead: false } },
        /'s' has trainable_token_indices/,
      ],
    ];
    for (const [edges, message] of cases) {
      for (const mix of [[{ edges, weight: 0.5, name: 's' }], [{ edges, weight: 1, name: 's' }, parts[2]]]) {
        assert.throws(
          () => composeEdges(mix, 64),
          (e) => isLoraplexError(e, 'REQUEST_INVALID') && e.param === 'lora' && message.test(e.message),
        );
      }
    }
  });
});

interface Case {
  id: string;
  adapter: string | null;
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
}

for (const backend of ['native', 'reference'] as const) {
  test(`${backend} engine: edge-lora as two halves at 0.5 serves PEFT’s edge-lora; saved modules only alone at 1`, async () => {
    const loaded = await loadModelDir(join(root, 'test', 'fixtures', 'tiny', 'llama3-rope', 'model'));
    const expected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8'));
    const cases: Case[] = expected.cases;
    const logits = await SafetensorsFile.open(join(fixtures, 'logits.safetensors'));
    const engine = new LLMEngine(loaded, {
      ...DEFAULT_ENGINE_OPTIONS,
      backend: createBackend(backend),
      kvCacheTokens: 4096,
      maxLoras: 8,
    });
    const load = (name: string) =>
      loadPeftAdapter(join(fixtures, 'adapters', name), loaded.config, { maxLoraRank: 64 });
    const edgeLora = await load('edge-lora');
    // PEFT saved the base's own embed_tokens / lm_head beside the LoRA (save_embedding_layers): leave them out.
    const { embedding, lmHead, ...lowRank } = edgeLora.edges!;
    const base = (w: typeof loaded.weights.embedding) => weightFormat(w.dtype).decode(w);
    assert.deepEqual(embedding, base(loaded.weights.embedding));
    assert.deepEqual(lmHead, base(loaded.weights.lmHead));
    const packedLowRank = packAdapter({ ...edgeLora, edges: lowRank }, loaded.config);
    engine.addAdapter('half-1', packedLowRank);
    engine.addAdapter('half-2', packedLowRank);
    for (const name of ['qv-r8', 'saved-modules', 'trainable-tokens']) {
      engine.addAdapter(name, packAdapter(await load(name), loaded.config));
    }

    const requests = (c: Case, adapter: GenerationRequest['adapter']): GenerationRequest[] => [
      {
        promptIds: c.prompt_ids,
        adapter,
        params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true },
      },
      ...c.greedy.map((g) => ({
        promptIds: g.prompt_ids,
        adapter,
        params: { maxTokens: g.tokens.length, temperature: 0, ignoreEos: true },
      })),
    ];
    const check = async (c: Case, [first, ...rest]: ReturnType<LLMEngine['generate']>, where: string) => {
      assert.equal(first.error, null, `${where}: ${first.error?.message}`);
      const want = (await logits.readF32(c.logits_key)).data;
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(first.promptLogits![i] - want[i]));
      assert.ok(diff <= LOGIT_TOLERANCE, `${where}: max |Δlogit| ${diff}`);
      for (const [i, g] of c.greedy.entries()) assert.deepEqual(rest[i].outputIds, g.tokens, `${where}: greedy ${i}`);
    };
    const caseOf = (adapter: string) => cases.find((c) => c.adapter === adapter)!;
    const halves: AdapterPart[] = [
      { name: 'half-1', weight: 0.5 },
      { name: 'half-2', weight: 0.5 },
    ];
    const savedAlone: AdapterPart[] = [{ name: 'saved-modules', weight: 1 }];

    await check(caseOf('edge-lora'), engine.generate(requests(caseOf('edge-lora'), halves)), 'halves alone');
    await check(caseOf('saved-modules'), engine.generate(requests(caseOf('saved-modules'), savedAlone)), 'saved at 1');
    const mixed = engine.generate([
      ...requests(caseOf('edge-lora'), halves),
      ...requests(caseOf('qv-r8'), 'qv-r8'),
      ...requests(caseOf('saved-modules'), savedAlone),
      ...requests(caseOf('qv-r8'), null).slice(0, 1),
    ]);
    const n = 1 + caseOf('edge-lora').greedy.length;
    await check(caseOf('edge-lora'), mixed.slice(0, n), 'halves in a mixed batch');
    await check(caseOf('qv-r8'), mixed.slice(n, 2 * n), 'qv-r8 in a mixed batch');
    await check(caseOf('saved-modules'), mixed.slice(2 * n, 3 * n), 'saved at 1 in a mixed batch');

    for (const [parts, field] of [
      [
        [
          { name: 'saved-modules', weight: 1 },
          { name: 'qv-r8', weight: 1 },
        ],
        'modules_to_save',
      ],
      [[{ name: 'trainable-tokens', weight: 0.5 }], 'trainable_token_indices'],
    ] as const) {
      // Refused when the request is added (its components are resident), before any step: a 400.
      assert.throws(
        () => engine.addRequest({ promptIds: [1, 2, 3], adapter: parts, params: { maxTokens: 2 } }),
        (e) =>
          isLoraplexError(e, 'REQUEST_INVALID') &&
          e.status === 400 &&
          e.param === 'lora' &&
          new RegExp(`'${parts[0].name}' has .*${field}`).test(e.message),
      );
    }
  });
}
