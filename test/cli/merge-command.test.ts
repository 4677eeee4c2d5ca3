/**
 * `loraplex merge`: each tiny fixture adapter merged and written as a model directory, which then loads as a
 * plain base model and gives PEFT's merge_and_unload() logits (≤ 1e-3) and greedy tokens (test/fixtures/merge,
 * made by oracle/merge_check.py); sharding round-trips; dtypes, tied embeddings and extra files are kept;
 * bad input is refused with messages that quote no more than the user typed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { createBackend } from '../../src/backends/index.ts';
import { type MergeOptions, parseShardSize, runMerge } from '../../src/cli/merge-command.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import { f32ToBf16 } from '../../src/kernels/dtype.ts';
import { loadModelDir } from '../../src/model/model-dir.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { INDEX_FILE, planShards, SINGLE_FILE } from '../../src/model/safetensors-writer.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'loraplex.js');
const tiny = join(root, 'test', 'fixtures', 'tiny');
// CI points this at a live oracle run (oracle/merge_check.py OUT) instead of the committed files.
const expectedRoot = process.env.LORAPLEX_MERGE_FIXTURES_DIR ?? join(root, 'test', 'fixtures', 'merge');
const LOGIT_TOLERANCE = 1e-3;

interface MergeCase {
  id: string;
  adapter: string;
  prompt_ids: number[];
  logits_key: string;
  greedy: { prompt_ids: number[]; tokens: number[] }[];
  /** The base was tied and the merged model is not (the adapter gave lm_head values of its own). */
  untied?: boolean;
}
interface MergeExpected {
  source_set: string;
  /** Where the adapters are, when not the source set's (the edge-module adapters of embedding-adapters/). */
  adapters?: string;
  checkpoint_dtype: string;
  greedy: { max_new_tokens: number };
  cases: MergeCase[];
}

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'loraplex-merge-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let dirs = 0;
const outDir = () => join(scratch, `out-${++dirs}`);

function loraplex(args: string[]) {
  return run(process.execPath, [bin, ...args], { cwd: root, env: { ...process.env, LORAPLEX_CACHE: scratch } });
}

async function engineFor(dir: string) {
  const loaded = await loadModelDir(dir);
  return new LLMEngine(loaded, { ...DEFAULT_ENGINE_OPTIONS, backend: createBackend('native'), kvCacheTokens: 1024 });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

async function tensorNames(dir: string): Promise<Map<string, string>> {
  const file = await SafetensorsFile.open(join(dir, SINGLE_FILE));
  return new Map([...file.tensors.values()].map((t) => [t.name, t.dtype]));
}

const sets = (await readdir(expectedRoot, { withFileTypes: true }))
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

test('the merge fixtures cover llama, qwen2 (biases), tied embeddings, fused projections, a bf16 checkpoint and edge modules', () => {
  assert.deepEqual(sets, [
    'edges-llama-tied',
    'edges-llama3-rope',
    'llama-bf16',
    'llama-tied',
    'llama3-rope',
    'phi3',
    'qwen2',
  ]);
});

for (const set of sets) {
  test(`${set}: every merged adapter loads as a base and gives PEFT merge_and_unload's logits and greedy tokens`, async (t) => {
    const expected = JSON.parse(await readFile(join(expectedRoot, set, 'expected.json'), 'utf8')) as MergeExpected;
    const logits = await SafetensorsFile.open(join(expectedRoot, set, 'logits.safetensors'));
    const source = join(tiny, expected.source_set.replace(/^tiny\//, ''));
    const sourceTensors = await tensorNames(join(source, 'model'));
    const adapters = expected.adapters ? join(root, expected.adapters) : join(source, 'adapters');
    let worst = 0;
    for (const c of expected.cases) {
      const out = outDir();
      const options = { model: join(source, 'model'), adapter: join(adapters, c.adapter), out };
      const result = await runMerge(options);
      const sourceConfig = await readFile(join(source, 'model', 'config.json'), 'utf8');
      if (c.untied) {
        // PEFT's merged model has a head of its own: lm_head.weight written, tie_word_embeddings false
        const want = new Map(sourceTensors).set('lm_head.weight', sourceTensors.get('model.embed_tokens.weight')!);
        assert.deepEqual(await tensorNames(out), want, `${set}/${c.adapter}: lm_head.weight written`);
        const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
        assert.deepEqual(config, { ...JSON.parse(sourceConfig), tie_word_embeddings: false });
        assert.ok(result.warnings.some((w) => /tie_word_embeddings: false/.test(w)));
      } else {
        // the checkpoint's names and dtype, tied stays tied (no lm_head.weight where the source has none)
        assert.deepEqual(await tensorNames(out), sourceTensors, `${set}/${c.adapter}: tensor names and dtypes kept`);
        assert.equal(await readFile(join(out, 'config.json'), 'utf8'), sourceConfig);
      }
      assert.ok(result.files.includes('generation_config.json') && result.files.includes('README.md'));

      const engine = await engineFor(out);
      const params = { maxTokens: expected.greedy.max_new_tokens, temperature: 0, ignoreEos: true };
      const [scored] = engine.generate([
        { promptIds: c.prompt_ids, adapter: null, params: { ...params, promptLogits: true } },
      ]);
      const diff = maxAbsDiff(scored.promptLogits!, (await logits.readF32(c.logits_key)).data);
      assert.ok(diff <= LOGIT_TOLERANCE, `${set}/${c.id}: max |Δlogit| ${diff} vs PEFT merge_and_unload`);
      worst = Math.max(worst, diff);
      const greedy = engine.generate(c.greedy.map((g) => ({ promptIds: g.prompt_ids, adapter: null, params })));
      assert.deepEqual(
        greedy.map((s) => s.outputIds),
        c.greedy.map((g) => g.tokens),
        `${set}/${c.adapter}: greedy tokens`,
      );
    }
    assert.ok(worst > 0 && worst <= LOGIT_TOLERANCE);
    t.diagnostic(
      `${expected.cases.length} adapters; worst max |Δlogit| vs PEFT merge_and_unload ${worst.toExponential(2)}`,
    );
  });
}

test('a merge past --max-shard-size writes shards and an index that load to the same model', async () => {
  const model = join(tiny, 'qwen2', 'model');
  const adapter = join(tiny, 'qwen2', 'adapters', 'all-r8-rslora');
  const single = outDir();
  const sharded = outDir();
  await runMerge({ model, adapter, out: single });
  const result = await runMerge({ model, adapter, out: sharded, maxShardBytes: 60_000 });
  const written = await readdir(sharded);
  assert.ok(!written.includes(SINGLE_FILE));
  const shards = written.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
  assert.ok(shards.length > 2, `several shards: ${shards}`);
  assert.equal(
    shards.at(-1),
    `model-${String(shards.length).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
  );
  assert.deepEqual(result.files.slice(0, shards.length + 1), [...shards, INDEX_FILE]);

  const index = JSON.parse(await readFile(join(sharded, INDEX_FILE), 'utf8'));
  const singleTensors = await SafetensorsFile.open(join(single, SINGLE_FILE));
  let total = 0;
  for (const t of singleTensors.tensors.values()) total += t.byteLength;
  assert.equal(index.metadata.total_size, total);
  assert.deepEqual(Object.keys(index.weight_map).sort(), [...singleTensors.tensors.keys()].sort());
  for (const shard of shards) {
    const file = await SafetensorsFile.open(join(sharded, shard));
    assert.ok(file.tensors.size > 0);
    assert.equal(file.metadata.format, 'pt');
    for (const name of file.tensors.keys()) {
      assert.equal(index.weight_map[name], shard);
      assert.deepEqual(await file.readBytes(name), await singleTensors.readBytes(name), `${name}: same bytes`);
    }
  }
  const prompt = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38];
  const params = { maxTokens: 4, temperature: 0, ignoreEos: true, promptLogits: true };
  const [a] = (await engineFor(single)).generate([{ promptIds: prompt, adapter: null, params }]);
  const [b] = (await engineFor(sharded)).generate([{ promptIds: prompt, adapter: null, params }]);
  assert.deepEqual(b.promptLogits, a.promptLogits);
});

test('shards follow tensor order and never split a tensor; one larger than the limit gets its own', () => {
  const t = (name: string, bytes: number) => ({
    name,
    dtype: 'F32' as const,
    shape: [bytes / 4],
    data: new Float32Array(bytes / 4),
  });
  const shards = planShards([t('a', 40), t('b', 40), t('c', 400), t('d', 40), t('e', 40), t('f', 40)], 100);
  assert.deepEqual(
    shards.map((s) => s.map((x) => x.name)),
    [['a', 'b'], ['c'], ['d', 'e'], ['f']],
  );
  assert.deepEqual(planShards([], 100), [[]]);
});

test('--dtype bf16 stores the f32-merged weights rounded to bf16 and says so in config.json', async () => {
  const model = join(tiny, 'llama3-rope', 'model');
  const adapter = join(tiny, 'llama3-rope', 'adapters', 'all-r8-rslora');
  const f32 = outDir();
  const bf16 = outDir();
  await runMerge({ model, adapter, out: f32 });
  const result = await runMerge({ model, adapter, out: bf16, dtype: 'bf16' });
  assert.equal(result.dtype, 'bf16');
  const config = JSON.parse(await readFile(join(bf16, 'config.json'), 'utf8'));
  assert.equal(config.torch_dtype, 'bfloat16', 'the legacy spelling stays the spelling');
  assert.equal(config.dtype, undefined);
  const wide = await SafetensorsFile.open(join(f32, SINGLE_FILE));
  const narrow = await SafetensorsFile.open(join(bf16, SINGLE_FILE));
  for (const name of wide.tensors.keys()) {
    assert.equal(narrow.info(name).dtype, 'BF16');
    const want = Uint16Array.from((await wide.readF32(name)).data, f32ToBf16);
    assert.deepEqual((await narrow.readRaw(name)).data, want, `${name}: bf16 of the f32 merge`);
  }
  assert.equal((await loadModelDir(bf16)).config.dtype, 'bf16');
});

test('a bf16 checkpoint stays bf16 unless --dtype f32 asks otherwise', async () => {
  const model = join(tiny, 'llama-bf16', 'model');
  const adapter = join(tiny, 'llama-bf16', 'adapters', 'qv-r8');
  const kept = outDir();
  const widened = outDir();
  assert.equal((await runMerge({ model, adapter, out: kept })).dtype, 'bf16');
  await runMerge({ model, adapter, out: widened, dtype: 'f32' });
  const narrow = await SafetensorsFile.open(join(kept, SINGLE_FILE));
  const wide = await SafetensorsFile.open(join(widened, SINGLE_FILE));
  assert.equal(JSON.parse(await readFile(join(widened, 'config.json'), 'utf8')).dtype, 'float32');
  for (const name of narrow.tensors.keys()) {
    assert.equal(wide.info(name).dtype, 'F32');
    const merged = (await wide.readF32(name)).data;
    // untouched tensors widen exactly; merged ones are the f32 sums the bf16 file rounds
    assert.deepEqual((await narrow.readRaw(name)).data, Uint16Array.from(merged, f32ToBf16), name);
  }
});

test('tokenizer and generation files are copied byte for byte; a special file in their place is skipped', async () => {
  const model = join(scratch, 'model-with-tokenizer');
  await cp(join(tiny, 'llama-tied', 'model'), model, { recursive: true });
  const files = { 'tokenizer.json': '{"version":"1.0"}\n', 'tokenizer_config.json': '{"chat_template":"{{x}}"}\n' };
  for (const [name, text] of Object.entries(files)) await writeFile(join(model, name), text);
  await mkdir(join(model, 'special_tokens_map.json'));
  await writeFile(join(scratch, 'vocab-elsewhere.json'), '{"a": 0}');
  await symlink(join(scratch, 'vocab-elsewhere.json'), join(model, 'vocab.json'));
  const out = outDir();
  const result = await runMerge({ model, adapter: join(tiny, 'llama-tied', 'adapters', 'mlp-r1'), out });
  for (const [name, text] of Object.entries(files)) assert.equal(await readFile(join(out, name), 'utf8'), text);
  assert.equal(await readFile(join(out, 'vocab.json'), 'utf8'), '{"a": 0}', 'a symlinked file (HF cache) is copied');
  assert.ok(!(await readdir(out)).includes('special_tokens_map.json'));
  assert.match(result.warnings.join('\n'), /special_tokens_map\.json in --model is not a regular file; not copied/);
  const readme = await readFile(join(out, 'README.md'), 'utf8');
  assert.match(readme, /`model-with-tokenizer`/);
  assert.match(readme, /`mlp-r1` \(PEFT LoRA\)/);
  const dora = outDir();
  await runMerge({ model, adapter: join(tiny, 'llama-tied', 'adapters', 'dora'), out: dora });
  assert.match(await readFile(join(dora, 'README.md'), 'utf8'), /`dora` \(PEFT DoRA\)/);
  assert.match(readme, /r = 1, lora_alpha = 4/);
  assert.ok(!readme.includes(scratch), 'the README names folders, not server paths');
});

test('the CLI merges, and generate serves the merged directory as a base with the merged greedy tokens', async () => {
  const expected = JSON.parse(await readFile(join(expectedRoot, 'qwen2', 'expected.json'), 'utf8')) as MergeExpected;
  const c = expected.cases.find((x) => x.adapter === 'all-r8-rslora')!;
  const out = outDir();
  const { stderr } = await loraplex([
    'merge',
    '--model',
    'test/fixtures/tiny/qwen2/model',
    '--adapter',
    'test/fixtures/tiny/qwen2/adapters/all-r8-rslora',
    '--out',
    out,
  ]);
  assert.match(stderr, /merged 14 projection\(s\) of all-r8-rslora into model; wrote model\.safetensors/);
  const batch = join(scratch, 'batch.jsonl');
  await writeFile(
    batch,
    `${c.greedy.map((g) => JSON.stringify({ prompt_ids: g.prompt_ids, max_tokens: 16 })).join('\n')}\n`,
  );
  const { stdout } = await loraplex(['generate', '--model', out, '--batch', batch, '--json', '--ignore-eos']);
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.token_ids),
    c.greedy.map((g) => g.tokens),
  );
});

test('bad input is refused before anything is written, naming only what the user typed', async () => {
  const qwen2 = join(tiny, 'qwen2');
  const refused = async (options: MergeOptions, pattern: RegExp) => {
    const error = await runMerge(options).then(
      () => assert.fail(`merge ${JSON.stringify(options)} should fail`),
      (e: Error) => e,
    );
    assert.match(error.message, pattern);
    // a path in the message is one the user typed, or a file in it
    const typed = Object.values(options).map(String);
    for (const path of error.message.match(/\/[\w./-]+/g) ?? []) {
      assert.ok(
        typed.some((t) => path.startsWith(t)),
        `${path} not typed`,
      );
    }
    if (options.out !== options.model) await assert.rejects(readdir(options.out), /ENOENT|ENOTDIR/);
  };
  const model = join(qwen2, 'model');
  const qv = join(qwen2, 'adapters', 'qv-r8');
  await refused({ model, adapter: qv, out: model }, /is the --model directory; write the merged model elsewhere/);
  await refused({ model, adapter: qv, out: join(model, 'config.json') }, /exists and is not a directory/);
  await refused(
    { model, adapter: join(tiny, 'qwen3', 'adapters', 'qv-r8'), out: outDir() },
    /adapter 'qv-r8': adapter_model\.safetensors: LoRA tensor .* has shape \[96, 8\], but q_proj of the base model has 64 outputs.*hint: maybe wrong base model/,
  );
  await refused({ model, adapter: join(qwen2, 'nope'), out: outDir() }, /nope/);
  const loha = join(scratch, 'loha');
  await cp(qv, loha, { recursive: true });
  const lohaConfig = JSON.parse(await readFile(join(loha, 'adapter_config.json'), 'utf8'));
  await writeFile(join(loha, 'adapter_config.json'), JSON.stringify({ ...lohaConfig, peft_type: 'LOHA' }));
  await refused(
    { model, adapter: loha, out: outDir() },
    /adapter 'loha': adapter_config\.json: peft_type: "LOHA" is not supported/,
  );
  await refused({ model: join(qwen2, 'adapters'), adapter: qv, out: outDir() }, /config/);

  const taken = outDir();
  await mkdir(taken);
  await writeFile(join(taken, 'notes.txt'), 'mine');
  await assert.rejects(runMerge({ model, adapter: qv, out: taken }), /--out \S+ is not empty \(hint: .*--force/);
  assert.deepEqual(await readdir(taken), ['notes.txt']);
  // --force writes into it, and a stale shard set from an earlier merge does not shadow the new file
  await runMerge({ model, adapter: qv, out: taken, force: true, maxShardBytes: 60_000 });
  assert.ok((await readdir(taken)).includes(INDEX_FILE));
  await runMerge({ model, adapter: qv, out: taken, force: true });
  const written = await readdir(taken);
  assert.ok(written.includes(SINGLE_FILE) && written.includes('notes.txt'));
  assert.deepEqual(
    written.filter((f) => f.startsWith('model-') || f === INDEX_FILE),
    [],
  );
});

test('the CLI refuses bad flags with exit code 1 and a one-line reason', async () => {
  const refused = async (args: string[], pattern: RegExp) => {
    const error = await loraplex(['merge', ...args]).then(
      () => assert.fail(`merge ${args.join(' ')} should fail`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(error.code, 1);
    assert.match(error.stderr, pattern);
  };
  const qwen2 = 'test/fixtures/tiny/qwen2';
  const base = ['--model', `${qwen2}/model`, '--adapter', `${qwen2}/adapters/qv-r8`];
  await refused([...base, '--out', `${qwen2}/model`], /^loraplex: --out \S+ is the --model directory/);
  await refused(
    [...base, '--out', outDir(), '--max-shard-size', '2 parsecs'],
    /--max-shard-size 2 parsecs: expected a size/,
  );
  await refused([...base, '--out', outDir(), '--dtype', 'int8'], /--dtype.*int8.*(f32|choices)/);
  await refused([...base.slice(0, 2), '--out', outDir()], /required option '--adapter <dir>' not specified/);
});

test('--max-shard-size reads sizes as Hugging Face does: decimal GB, binary GiB', () => {
  assert.equal(parseShardSize('2GB'), 2e9);
  assert.equal(parseShardSize('500MB'), 5e8);
  assert.equal(parseShardSize('1GiB'), 2 ** 30);
  assert.equal(parseShardSize('10kb'), 10_000);
  assert.equal(parseShardSize('123456'), 123456);
  for (const bad of ['', '0', '-1GB', 'GB', '1.5 parsecs'])
    assert.throws(() => parseShardSize(bad), /--max-shard-size/);
});
