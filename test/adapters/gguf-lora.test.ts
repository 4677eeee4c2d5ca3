/**
 * llama.cpp GGUF LoRA adapters (test/fixtures/gguf-lora, converted from the tiny PEFT adapters by
 * oracle/gguf_lora_fixtures.py as convert_lora_to_gguf.py converts them): the same packed weights as the PEFT
 * source (bitwise for f32 files, the source rounded to the file's dtype otherwise), the PEFT source's oracle
 * logits and greedy tokens when served, alone, mixed with PEFT adapters and the base, and under chunked
 * prefill; store and --adapter folders holding one .gguf; damaged and mismatched files refused with errors
 * that name the adapter's file, never a server path.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isGgufAdapterDir } from '../../src/adapters/formats/gguf-lora/adapter-dir.ts';
import { loadGgufAdapter, unpermuteRows } from '../../src/adapters/formats/gguf-lora/load.ts';
import { loadPackedAdapter } from '../../src/adapters/loader/load-packed.ts';
import { packAdapter } from '../../src/adapters/pack.ts';
import { loadPeftAdapter } from '../../src/adapters/peft/load.ts';
import { LocalDirStore } from '../../src/adapters/store/local-dir-store.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kernels/dtype.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { moduleShape } from '../../src/model/modules.ts';
import { type ErrorCode, isLoraplexError } from '../../src/observability/errors.ts';
import { type FixtureCase, type FixtureSet, fixturesRoot, readFixtureSets } from '../conformance/fixtures.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';

const TINY = fixturesRoot(); // LORAPLEX_FIXTURES_DIR for a live regeneration
const GGUF_ROOT = process.env.LORAPLEX_GGUF_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'gguf-lora');
const LOGIT_TOLERANCE = 1e-3;
const REGENERATE = '"$(bash oracle/setup.sh | tail -n 1)" oracle/gguf_lora_fixtures.py';

interface Conversion {
  set: string;
  adapter: string; // the PEFT source in test/fixtures/tiny/<set>/adapters
  dtype: 'f32' | 'f16' | 'bf16' | 'q8_0';
  dir: string;
  file: string;
  source_sha256: string;
}

const manifest: { files: Conversion[] } = JSON.parse(readFileSync(join(GGUF_ROOT, 'manifest.json'), 'utf8'));
const conversions = manifest.files;
const bases = new Map<string, ModelConfig>();
async function baseOf(set: string): Promise<ModelConfig> {
  if (!bases.has(set)) bases.set(set, (await loadModelDir(join(TINY, set, 'model'))).config);
  return bases.get(set)!;
}
const sourceDir = (c: Conversion) => join(TINY, c.set, 'adapters', c.adapter);
const ggufDir = (c: Conversion) => join(GGUF_ROOT, c.dir);

test('the fixtures cover llama (q/k permuted), qwen2 and phi3 (fused), and every dtype', () => {
  const sets = new Set(conversions.map((c) => c.set));
  for (const s of ['llama-tied', 'qwen2', 'phi3']) assert.ok(sets.has(s), `no GGUF fixture for ${s}`);
  assert.deepEqual([...new Set(conversions.map((c) => c.dtype))].sort(), ['bf16', 'f16', 'f32', 'q8_0']);
});

test('each GGUF fixture was converted from the PEFT adapter now in test/fixtures/tiny', () => {
  for (const c of conversions) {
    const now = createHash('sha256')
      .update(readFileSync(join(sourceDir(c), 'adapter_model.safetensors')))
      .digest('hex');
    assert.equal(now, c.source_sha256, `${c.dir} is stale: the tiny fixtures changed since; run ${REGENERATE}`);
  }
});

/** What a factor holds after the converter wrote it in `dtype` (Q8_0 is checked against its own bound). */
function rounded(values: Float32Array, dtype: 'f16' | 'bf16'): Float32Array {
  const round = dtype === 'f16' ? (v: number) => f16ToF32(f32ToF16(v)) : (v: number) => bf16ToF32(f32ToBf16(v));
  return values.map(round);
}

/** Q8_0: blocks of 32 along a row, d = max|x| / 127 stored as f16, q = round(x / d): |Δ| ≤ d/2 (+ d's rounding). */
function assertQ8Close(got: Float32Array, want: Float32Array, what: string) {
  for (let block = 0; block < want.length; block += 32) {
    const values = want.subarray(block, block + 32);
    const d = Math.max(...values.map(Math.abs)) / 127;
    const bound = d * (0.5 + 127 * 2 ** -11) + 1e-12;
    for (let j = 0; j < values.length; j++) {
      const diff = Math.abs(got[block + j] - values[j]);
      assert.ok(diff <= bound, `${what}[${block + j}]: |Δ| ${diff} > ${bound}`);
    }
  }
}

describe('GGUF adapters load as their PEFT source', () => {
  for (const c of conversions) {
    test(`${c.dir} (${c.dtype}): same modules, ranks and scales; factors ${c.dtype === 'f32' ? 'bitwise, packed bitwise' : `as ${c.dtype} holds them`}`, async () => {
      const base = await baseOf(c.set);
      const peft = await loadPeftAdapter(sourceDir(c), base, { maxLoraRank: 128, name: c.adapter });
      const gguf = await loadGgufAdapter(ggufDir(c), base, { maxLoraRank: 128, name: c.adapter });
      assert.equal(gguf.config.format, 'gguf');
      assert.deepEqual([...gguf.modules.keys()], [...peft.modules.keys()]);
      assert.deepEqual(gguf.targets, peft.targets);
      assert.equal(gguf.rankMax, peft.rankMax);
      for (const [m, want] of peft.modules) {
        const got = gguf.modules.get(m)!;
        assert.equal(got.rank, want.rank);
        assert.equal(Math.fround(got.scale), Math.fround(want.scale), `module ${m}: scale`);
        const what = `${c.dir} layer ${want.layer} ${want.kind}`;
        if (c.dtype === 'f32') {
          assert.deepEqual(got.a, want.a, `${what}: lora_a`);
          assert.deepEqual(got.b, want.b, `${what}: lora_b`);
        } else if (c.dtype === 'q8_0') {
          // Rows of whole 32-value blocks are Q8_0; shorter rows (lora_b, rank 8) fall back to F16, as in llama.cpp.
          const inFeatures = moduleShape(base, want.kind).inFeatures;
          if (inFeatures % 32 === 0) assertQ8Close(got.a, want.a, `${what}: lora_a`);
          else assert.deepEqual(got.a, rounded(want.a, 'f16'));
          if (want.rank % 32 === 0) assertQ8Close(got.b, want.b, `${what}: lora_b`);
          else assert.deepEqual(got.b, rounded(want.b, 'f16'), `${what}: lora_b (F16)`);
        } else {
          assert.deepEqual(got.a, rounded(want.a, c.dtype), `${what}: lora_a`);
          assert.deepEqual(got.b, rounded(want.b, c.dtype), `${what}: lora_b`);
        }
      }
      if (c.dtype === 'f32') {
        const [p, g] = [packAdapter(peft, base), packAdapter(gguf, base)];
        assert.deepEqual(g.weights, p.weights);
        assert.deepEqual(g.scale, p.scale);
        assert.deepEqual(g.rank, p.rank);
        assert.deepEqual(g.offsetA, p.offsetA);
        assert.deepEqual(g.offsetB, p.offsetB);
      }
    });
  }

  test("un-permuting undoes convert_hf_to_gguf's LlamaModel.permute (rows 2i + j ← j·d/2 + i per head)", () => {
    // Two heads of d = 4 rows, rank 1: HF rows [h0: 0 1 2 3 | h1: 4 5 6 7] are stored as [0 2 1 3 | 4 6 5 7].
    const stored = Float32Array.from([0, 2, 1, 3, 4, 6, 5, 7]);
    assert.deepEqual([...unpermuteRows(stored, 1, 2)], [0, 1, 2, 3, 4, 5, 6, 7]);
    // Rank 2 moves whole rows.
    const stored2 = Float32Array.from([0, 10, 2, 12, 1, 11, 3, 13]);
    assert.deepEqual([...unpermuteRows(stored2, 2, 1)], [0, 10, 1, 11, 2, 12, 3, 13]);
  });
});

function request(c: FixtureCase) {
  return {
    promptIds: c.prompt_ids,
    adapter: c.adapter,
    params: { maxTokens: c.greedy_tokens.length, temperature: 0, ignoreEos: true, promptLogits: true },
  };
}

const GGUF_SUFFIX = '@gguf';
const servedConversions = conversions.filter((c) => c.dtype === 'f32');
const sets = (await readFixtureSets(TINY, () => {})).filter((s) => servedConversions.some((c) => c.set === s.name));

describe('served GGUF adapters give the PEFT source adapter oracle outputs', () => {
  const backend = createBackend('native');
  for (const set of sets) {
    const ggufs = servedConversions.filter((c) => c.set === set.name);
    // The oracle's cases of each converted adapter, run with the GGUF copy (registered as "<adapter>@gguf").
    const ggufCases = set.cases
      .filter((c) => ggufs.some((g) => g.adapter === c.adapter))
      .map((c) => ({ ...c, adapter: `${c.adapter}${GGUF_SUFFIX}`, source: c.adapter! }));
    // Mixed with the base and the PEFT adapters the GGUF files were not made from.
    const others = set.cases.filter(
      (c) => c.adapter === null || (c.adapter === 'mlp-r1' && !ggufs.some((g) => g.adapter === 'mlp-r1')),
    );

    async function engineWith(maxBatchTokens?: number): Promise<LLMEngine> {
      const loaded = await loadModelDir(join(set.dir, 'model'));
      const engine = new LLMEngine(loaded, {
        ...DEFAULT_ENGINE_OPTIONS,
        kvCacheTokens: 4096,
        loraDtype: 'f32',
        backend,
        ...(maxBatchTokens ? { maxBatchTokens } : {}),
      });
      for (const g of ggufs) {
        const adapter = await loadGgufAdapter(ggufDir(g), loaded.config, { maxLoraRank: 128 });
        engine.addAdapter(`${g.adapter}${GGUF_SUFFIX}`, packAdapter(adapter, loaded.config));
      }
      for (const name of new Set(others.map((c) => c.adapter).filter((a): a is string => a !== null))) {
        const adapter = await loadPeftAdapter(join(set.dir, 'adapters', name), loaded.config, { maxLoraRank: 128 });
        engine.addAdapter(name, packAdapter(adapter, loaded.config));
      }
      return engine;
    }

    async function check(set: FixtureSet, cases: FixtureCase[], engine: LLMEngine, label: string) {
      const seqs = engine.generate(cases.map(request));
      let worst = 0;
      for (const [i, seq] of seqs.entries()) {
        const c = cases[i];
        const expected = (await set.logits.readF32(c.logits_key)).data;
        const diff = maxAbsDiff(seq.promptLogits!, expected);
        assert.ok(diff <= LOGIT_TOLERANCE, `${label} ${c.id} (${c.adapter}): prompt logits max |Δ| ${diff}`);
        assert.deepEqual(seq.outputIds, c.greedy_tokens, `${label} ${c.id} (${c.adapter}): greedy tokens differ`);
        worst = Math.max(worst, diff);
      }
      return worst;
    }

    test(`${set.name}: ${ggufs.map((g) => g.file).join(', ')} alone match the PEFT oracle`, async (t) => {
      const engine = await engineWith();
      let worst = 0;
      for (const c of ggufCases) worst = Math.max(worst, await check(set, [c], engine, 'alone'));
      t.diagnostic(`${ggufCases.length} cases; worst |Δlogit| ${worst}`);
    });

    test(`${set.name}: GGUF, PEFT and base rows in one mixed batch, and chunked (5-token budget)`, async (t) => {
      const mixed = [...others, ...ggufCases].sort((x, y) => x.prompt_ids.length - y.prompt_ids.length);
      assert.ok(mixed.some((c) => c.adapter === null) && ggufCases.length > 1);
      const worst = await check(set, mixed, await engineWith(), 'mixed');
      const chunked = await check(set, mixed, await engineWith(5), 'chunked');
      t.diagnostic(`${mixed.length} sequences; worst |Δlogit| ${worst} mixed, ${chunked} chunked`);
    });
  }
});

const tmpRoots: string[] = [];
after(async () => {
  for (const dir of tmpRoots) await rm(dir, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraplex-gguf-'));
  tmpRoots.push(dir);
  return dir;
}

const QWEN_QV = conversions.find((c) => c.set === 'qwen2' && c.adapter === 'qv-r8' && c.dtype === 'f32')!;

describe('store and --adapter folders holding one .gguf', () => {
  test('the store lists a GGUF folder; its load (the loader thread path) packs as the PEFT source', async () => {
    const store = await tmp();
    await mkdir(join(store, 'sql'));
    await copyFile(join(ggufDir(QWEN_QV), QWEN_QV.file), join(store, 'sql', QWEN_QV.file));
    await mkdir(join(store, 'empty'));
    const listed = await (await LocalDirStore.open(store)).list();
    assert.deepEqual(
      listed.map((a) => a.name),
      ['sql'],
    );
    const base = await baseOf('qwen2');
    const { packed, summary } = await loadPackedAdapter('sql', listed[0].dir, base, 64, store);
    const peft = packAdapter(await loadPeftAdapter(sourceDir(QWEN_QV), base, { maxLoraRank: 64 }), base);
    assert.deepEqual(packed.weights, peft.weights);
    assert.deepEqual(summary.targets, ['q_proj', 'v_proj']);
  });

  test('an --adapter folder (no root: the folder itself) loads; a PEFT folder with a converted .gguf beside stays PEFT', async () => {
    const base = await baseOf('qwen2');
    const { summary } = await loadPackedAdapter('sql', ggufDir(QWEN_QV), base, 64);
    assert.equal(summary.rank, 8);
    const both = await tmp();
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      await copyFile(join(sourceDir(QWEN_QV), f), join(both, f));
    await copyFile(join(ggufDir(QWEN_QV), QWEN_QV.file), join(both, 'converted.gguf'));
    assert.equal(await isGgufAdapterDir(both), false);
    assert.equal(await isGgufAdapterDir(ggufDir(QWEN_QV)), true);
  });

  test('two .gguf files in one folder are refused; so is a folder with neither format', async () => {
    const base = await baseOf('qwen2');
    const two = await tmp();
    await copyFile(join(ggufDir(QWEN_QV), QWEN_QV.file), join(two, 'a.gguf'));
    await copyFile(join(ggufDir(QWEN_QV), QWEN_QV.file), join(two, 'b.gguf'));
    await assert.rejects(
      loadGgufAdapter(two, base, { maxLoraRank: 64, name: 'two' }),
      refused('ADAPTER_INVALID_CONFIG', /holds 2 \.gguf files/, two),
    );
    const none = await tmp();
    await assert.rejects(
      loadGgufAdapter(none, base, { maxLoraRank: 64, name: 'none' }),
      refused('ADAPTER_FILE_MISSING', /\*\.gguf/, none),
    );
  });
});

// ---- bad files -------------------------------------------------------------------------------------------

/** A refusal with `code`, a message matching `pattern`, and no server path in it. */
function refused(code: ErrorCode, pattern: RegExp, dir: string) {
  return (e: unknown) => {
    assert.ok(isLoraplexError(e, code), `expected ${code}, got ${(e as Error).message}`);
    const message = (e as Error).message;
    assert.match(message, pattern);
    assert.ok(!message.includes(dir) && !message.includes(tmpdir()), `the message quotes a path: ${message}`);
    return true;
  };
}

type Value = { type: 'string'; value: string } | { type: 'f32'; value: number } | { type: 'u32'; value: number };
interface TensorSpec {
  name: string;
  ne: number[];
  type?: number; // ggml type, F32 (0) unless given
  data?: Buffer;
}

/** A GGUF v3 file, little-endian, 32-byte aligned: what gguf-py's GGUFWriter writes. */
function ggufBytes(kv: [string, Value][], tensors: TensorSpec[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => Buffer.from(new Uint32Array([v]).buffer);
  const u64 = (v: number) => Buffer.from(new BigUint64Array([BigInt(v)]).buffer);
  const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);
  parts.push(Buffer.from('GGUF'), u32(3), u64(tensors.length), u64(kv.length));
  for (const [key, v] of kv) {
    parts.push(str(key));
    if (v.type === 'string') parts.push(u32(8), str(v.value));
    else if (v.type === 'f32') parts.push(u32(6), Buffer.from(new Float32Array([v.value]).buffer));
    else parts.push(u32(4), u32(v.value));
  }
  const datas = tensors.map(
    (t) => t.data ?? Buffer.from(new Float32Array(t.ne.reduce((n, d) => n * d, 1)).fill(0.01).buffer),
  );
  let offset = 0;
  for (const [i, t] of tensors.entries()) {
    parts.push(str(t.name), u32(t.ne.length), ...t.ne.map(u64), u32(t.type ?? 0), u64(offset));
    offset += Math.ceil(datas[i].length / 32) * 32;
  }
  const header = Buffer.concat(parts);
  const out: Buffer[] = [header, Buffer.alloc(Math.ceil(header.length / 32) * 32 - header.length)];
  for (const d of datas) out.push(d, Buffer.alloc(Math.ceil(d.length / 32) * 32 - d.length));
  return Buffer.concat(out);
}

const ADAPTER_KV: [string, Value][] = [
  ['general.architecture', { type: 'string', value: 'qwen2' }],
  ['general.type', { type: 'string', value: 'adapter' }],
  ['adapter.type', { type: 'string', value: 'lora' }],
  ['adapter.lora.alpha', { type: 'f32', value: 16 }],
];
/** blk.0.attn_q of the tiny qwen2: in 64, out 64; rank 8. */
const Q_PAIR: TensorSpec[] = [
  { name: 'blk.0.attn_q.weight.lora_a', ne: [64, 8] },
  { name: 'blk.0.attn_q.weight.lora_b', ne: [8, 64] },
];

async function adapterWith(bytes: Uint8Array): Promise<string> {
  const dir = join(await tmp(), 'bad');
  await mkdir(dir);
  await writeFile(join(dir, 'bad.gguf'), bytes);
  return dir;
}

function withKv(key: string, value: Value | null): [string, Value][] {
  const kv = ADAPTER_KV.filter(([k]) => k !== key);
  return value === null ? kv : [...kv, [key, value]];
}

describe('bad GGUF adapter files are refused with clear errors that quote no paths', () => {
  const load = async (dir: string) => loadGgufAdapter(dir, await baseOf('qwen2'), { maxLoraRank: 64, name: 'bad' });

  test('the written file itself loads (so each refusal below is about its one change)', async () => {
    const adapter = await load(await adapterWith(ggufBytes(ADAPTER_KV, Q_PAIR)));
    assert.deepEqual(adapter.targets, ['q_proj']);
    assert.equal(adapter.modules.get(0)?.scale, 2);
  });

  const cases: [string, () => Buffer, ErrorCode, RegExp][] = [
    [
      'not a GGUF file',
      () => Buffer.from('{"not": "gguf"}'.padEnd(256, ' ')),
      'ADAPTER_WEIGHTS_INVALID',
      /not a GGUF file/,
    ],
    [
      'truncated inside the header',
      () => ggufBytes(ADAPTER_KV, Q_PAIR).subarray(0, 100),
      'ADAPTER_WEIGHTS_INVALID',
      /truncated|ends inside/,
    ],
    [
      'truncated inside the tensor data',
      () => {
        const b = ggufBytes(ADAPTER_KV, Q_PAIR);
        return b.subarray(0, b.length - 700);
      },
      'ADAPTER_WEIGHTS_INVALID',
      /past the end of the file/,
    ],
    [
      'a model, not an adapter (no general.type)',
      () => ggufBytes(withKv('general.type', null), Q_PAIR),
      'ADAPTER_INVALID_CONFIG',
      /general\.type: is missing/,
    ],
    [
      'general.type "model"',
      () => ggufBytes(withKv('general.type', { type: 'string', value: 'model' }), Q_PAIR),
      'ADAPTER_INVALID_CONFIG',
      /general\.type: is "model"/,
    ],
    [
      'adapter.type "cvec"',
      () => ggufBytes(withKv('adapter.type', { type: 'string', value: 'cvec' }), Q_PAIR),
      'ADAPTER_UNSUPPORTED_FEATURE',
      /adapter\.type: is "cvec"/,
    ],
    [
      'adapter.lora.alpha not f32',
      () => ggufBytes(withKv('adapter.lora.alpha', { type: 'u32', value: 16 }), Q_PAIR),
      'ADAPTER_INVALID_CONFIG',
      /adapter\.lora\.alpha: must be a float32/,
    ],
    [
      'another arch',
      () => ggufBytes(withKv('general.architecture', { type: 'string', value: 'llama' }), Q_PAIR),
      'ADAPTER_BASE_MISMATCH',
      /general\.architecture is "llama", but the base model is Qwen2ForCausalLM/,
    ],
    [
      'an unknown tensor suffix',
      () => ggufBytes(ADAPTER_KV, [...Q_PAIR, { name: 'blk.0.attn_q.weight.lora_c', ne: [8, 8] }]),
      'ADAPTER_TENSOR_UNEXPECTED',
      /lora_c'.*unexpected suffix/,
    ],
    [
      'a tensor the base does not have',
      () =>
        ggufBytes(ADAPTER_KV, [
          { name: 'blk.0.ffn_gate_exps.weight.lora_a', ne: [64, 8] },
          { name: 'blk.0.ffn_gate_exps.weight.lora_b', ne: [8, 112] },
        ]),
      'ADAPTER_BASE_MISMATCH',
      /ffn_gate_exps.*maybe wrong base model/,
    ],
    [
      'LoRA on the embeddings',
      () =>
        ggufBytes(ADAPTER_KV, [
          { name: 'token_embd.weight.lora_a', ne: [8, 96] },
          { name: 'token_embd.weight.lora_b', ne: [64, 8] },
        ]),
      'ADAPTER_UNSUPPORTED_TARGET',
      /token_embd\.weight' is not supported/,
    ],
    [
      'half a pair',
      () => ggufBytes(ADAPTER_KV, [Q_PAIR[0]]),
      'ADAPTER_TENSOR_MISSING',
      /attn_q\.weight\.lora_b'.*only its lora_a/,
    ],
    [
      'a layer the base does not have',
      () =>
        ggufBytes(
          ADAPTER_KV,
          Q_PAIR.map((t) => ({ ...t, name: t.name.replace('blk.0', 'blk.7') })),
        ),
      'ADAPTER_BASE_MISMATCH',
      /layer 7, but the base model has 2 layers/,
    ],
    [
      'lora_a for another hidden size',
      () => ggufBytes(ADAPTER_KV, [{ ...Q_PAIR[0], ne: [96, 8] }, Q_PAIR[1]]),
      'ADAPTER_BASE_MISMATCH',
      /takes 64 inputs \(hidden_size\), not 96/,
    ],
    [
      'lora_b for another head count',
      () => ggufBytes(ADAPTER_KV, [Q_PAIR[0], { ...Q_PAIR[1], ne: [8, 48] }]),
      'ADAPTER_BASE_MISMATCH',
      /has 64 outputs.*not 48/,
    ],
    [
      'lora_a not transposed (ranks disagree)',
      () => ggufBytes(ADAPTER_KV, [{ ...Q_PAIR[0], ne: [64, 4] }, Q_PAIR[1]]),
      'ADAPTER_TENSOR_SHAPE',
      /rank/,
    ],
    [
      'a rank above --max-lora-rank',
      () =>
        ggufBytes(ADAPTER_KV, [
          { ...Q_PAIR[0], ne: [64, 128] },
          { ...Q_PAIR[1], ne: [128, 64] },
        ]),
      'ADAPTER_RANK_TOO_HIGH',
      /rank 128/,
    ],
    [
      'a NaN factor',
      () =>
        ggufBytes(ADAPTER_KV, [
          { ...Q_PAIR[0], data: Buffer.from(new Float32Array(512).fill(Number.NaN).buffer) },
          Q_PAIR[1],
        ]),
      'ADAPTER_WEIGHTS_INVALID',
      /holds NaN/,
    ],
    [
      'a quantization loraplex does not read (Q2_K)',
      () => ggufBytes(ADAPTER_KV, [{ ...Q_PAIR[0], type: 10, data: Buffer.alloc(84) }, Q_PAIR[1]]),
      'ADAPTER_WEIGHTS_INVALID',
      /type Q2_K.*F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K/,
    ],
    ['no LoRA tensors at all', () => ggufBytes(ADAPTER_KV, []), 'ADAPTER_TENSOR_MISSING', /holds no LoRA tensors/],
  ];
  for (const [what, bytes, code, pattern] of cases) {
    test(what, async () => {
      const dir = await adapterWith(bytes());
      await assert.rejects(load(dir), refused(code, pattern, dir));
    });
  }

  test('norm tensors (mergekit) are skipped, as llama.cpp skips them', async () => {
    const adapter = await load(
      await adapterWith(ggufBytes(ADAPTER_KV, [...Q_PAIR, { name: 'blk.0.attn_norm.weight', ne: [64] }])),
    );
    assert.deepEqual(adapter.targets, ['q_proj']);
  });

  test('every truncation of a real file is refused, never half-loaded', async () => {
    const whole = await readFile(join(ggufDir(QWEN_QV), QWEN_QV.file));
    for (const length of [0, 4, 8, 23, 24, 40, 300, 831, 832, 2000, whole.length - 1]) {
      const dir = await adapterWith(whole.subarray(0, length));
      await assert.rejects(load(dir), refused('ADAPTER_WEIGHTS_INVALID', /.gguf: /, dir), `cut at ${length}`);
    }
  });
});
