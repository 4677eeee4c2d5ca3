/**
 * The `lora` field over HTTP with adapters that are more than layer LoRA, on the tiny fixture models through a
 * real loopback server and the official `openai` client. Saved copies (modules_to_save) and trainable token
 * rows replace the base's values, so scaled or combined they are 400s naming the adapter and the field, before
 * any stream starts; alone at weight 1 they serve what `model` serves. LoRA on embed_tokens / lm_head and VeRA
 * (folded into plain factors) compose: they answer what the offline engine generates for the same combination,
 * and at weight 1 beside a weight-0 partner what the adapter alone answers (the composed path agrees with the
 * adapter's own kernels).
 *
 * The committed edge-lora also carries what PEFT's save_embedding_layers wrote beside its LoRA: the base's own
 * embed_tokens / lm_head. The loader drops copies equal to the base (kinds/edge-base-copies.ts), so it composes
 * exactly as `edge-lora-only`, the same files without those two tensors.
 *
 * The tiny models have no tokenizer: prompts are token ids and a word-level codec (`t0` … `t95`) writes each
 * id as one word, so equal text is equal ids.
 */
import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { AdapterChoice } from '../../src/adapters/compose.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { LLMEngine } from '../../src/engine/llm-engine.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { type TextCodec, textCodec } from '../../src/tokenizer/text-codec.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { testApp } from './loopback.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures');
// Ids 13, 20 and 91 are trainable-tokens' rows, so its prompt meets them.
const PROMPT = [1, 13, 20, 91, 7, 42];
const MAX_TOKENS = 8;

/** One id, one word: `t<id>`. */
function wordCodec(vocabSize: number): TextCodec {
  const vocab = Object.fromEntries(Array.from({ length: vocabSize }, (_, i) => [`t${i}`, i]));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: 't0' },
  };
  return textCodec(new Tokenizer({ tokenizerJson }, 'word-codec'));
}

interface Served {
  address: string;
  /** A greedy completion of PROMPT; `body` adds model / lora. */
  complete(body: Record<string, unknown>): Promise<string>;
  /** The offline engine's greedy text for the same prompt and adapter choice. */
  offline(adapter: AdapterChoice): string;
  close(): Promise<void>;
}

async function serve(set: string, adapters: Record<string, string>, loraDir?: string): Promise<Served> {
  const build = {
    modelDir: join(fixtures, 'tiny', set, 'model'),
    adapters: Object.entries(adapters).map(([name, dir]) => ({ name, dir })),
    kvCacheTokens: 1024,
    maxLoraRank: 64,
    ...(loraDir ? { loraDir } : {}),
  };
  const engine = await AsyncEngine.start(build);
  const codec = wordCodec(engine.info.vocabSize);
  const app = testApp(engine, codec);
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
  const local: LLMEngine = (await buildEngine(build)).engine;
  return {
    address,
    async complete(body) {
      const r = (await client.completions.create({
        model: 'base',
        prompt: PROMPT,
        max_tokens: MAX_TOKENS,
        temperature: 0,
        ignore_eos: true,
        ...body,
      } as never)) as unknown as OpenAI.Completion;
      return r.choices[0].text;
    },
    offline(adapter) {
      const params = { maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true };
      const [seq] = local.generate([{ promptIds: PROMPT, adapter, params }]);
      assert.equal(seq.error, null, seq.error?.message);
      // The server's text continues the prompt's (here: a leading space).
      return codec.decode([...PROMPT, ...seq.outputIds]).slice(codec.decode(PROMPT).length);
    },
    async close() {
      await app.close();
      await engine.close();
    },
  };
}

/** POSTs a completion that must be refused: 400, a JSON error (no event stream), naming `param` and `message`. */
async function refused(s: Served, body: Record<string, unknown>, param: string, message: RegExp) {
  const res = await fetch(`${s.address}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'base', prompt: PROMPT, max_tokens: 2, ...body }),
  });
  const type = res.headers.get('content-type') ?? '';
  const json = await res.json();
  assert.equal(res.status, 400, JSON.stringify(json));
  assert.match(type, /^application\/json/, `${type}: ${JSON.stringify(json)}`);
  assert.equal(json.error.param, param, JSON.stringify(json));
  assert.match(json.error.message, message);
}

const halves = (a: string, b: string) => [
  { name: a, scale: 0.5 },
  { name: b, scale: 0.5 },
];
const parts = (lora: { name: string; scale?: number }[]) => lora.map((p) => ({ name: p.name, weight: p.scale ?? 1 }));

const edgeDir = (name: string) => join(fixtures, 'embedding-adapters', 'llama3-rope', 'adapters', name);
let scratch: string;
let rope: Served;
let tied: Served;

/** edge-lora without the base's embed_tokens / lm_head that save_embedding_layers wrote beside its LoRA. */
async function edgeLoraOnly(): Promise<string> {
  const dir = join(scratch, 'edge-lora-only');
  await mkdir(dir);
  await copyFile(join(edgeDir('edge-lora'), 'adapter_config.json'), join(dir, 'adapter_config.json'));
  const file = await SafetensorsFile.open(join(edgeDir('edge-lora'), 'adapter_model.safetensors'));
  const names = [...file.tensors.keys()].filter((n) => !n.endsWith('.base_layer.weight'));
  assert.equal(names.length, file.tensors.size - 2);
  const tensors = await Promise.all(
    names.map(async (name) => ({ name, dtype: 'F32' as const, ...(await file.readF32(name)) })),
  );
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'loraplex-edge-compose-'));
  rope = await serve('llama3-rope', {
    'saved-modules': edgeDir('saved-modules'),
    'trainable-tokens': edgeDir('trainable-tokens'),
    'edge-lora': edgeDir('edge-lora'),
    'edge-lora-only': await edgeLoraOnly(),
    'qv-r8': edgeDir('qv-r8'),
    'vera-saved': edgeDir('vera-saved'),
  });
  // The only VeRA fixtures without saved copies are the tiny sets' own (here: the tied llama).
  const tinyDir = (name: string) => join(fixtures, 'tiny', 'llama-tied', 'adapters', name);
  tied = await serve('llama-tied', { 'vera-qv': tinyDir('vera-qv'), 'qv-r8': tinyDir('qv-r8') });
});

after(async () => {
  await rope?.close();
  await tied?.close();
  await rm(scratch, { recursive: true, force: true });
});

describe('saved copies and token rows in the lora field', () => {
  test('scaled or combined: a 400 naming the adapter, what cannot be scaled, and the field; no stream', async () => {
    const cannot = (name: string, what: string) =>
      new RegExp(`adapter '${name}' has ${what}.*cannot be scaled or combined`);
    const savedEmbed = cannot('saved-modules', 'a saved copy of embed_tokens \\(modules_to_save');
    await refused(rope, { lora: [{ name: 'saved-modules', scale: 0.5 }] }, 'lora', savedEmbed);
    await refused(rope, { lora: [{ name: 'saved-modules', scale: 0.5 }], stream: true }, 'lora', savedEmbed);
    const tokens = cannot('trainable-tokens', 'trainable_token_indices');
    await refused(rope, { lora: [{ name: 'trainable-tokens', scale: 0.5 }] }, 'lora', tokens);
    await refused(rope, { lora: [{ name: 'trainable-tokens', scale: 2 }], stream: true }, 'lora', tokens);
    // Mixed at weight 1 each: the mixing is refused, not only the scale.
    const mixed = { lora: [{ name: 'qv-r8' }, { name: 'saved-modules' }] };
    await refused(rope, mixed, 'lora', savedEmbed);
    await refused(rope, { ...mixed, stream: true }, 'lora', savedEmbed);
    await refused(rope, { model: 'qv-r8', lora: [{ name: 'qv-r8' }, { name: 'trainable-tokens' }] }, 'lora', tokens);
    // VeRA with saved copies: its vectors would fold, its saved copies cannot.
    const veraSaved = cannot('vera-saved', 'a saved copy of embed_tokens');
    await refused(rope, { lora: [{ name: 'vera-saved', scale: 0.5 }] }, 'lora', veraSaved);
    await refused(rope, { lora: halves('vera-saved', 'qv-r8') }, 'lora', veraSaved);
    // The server goes on serving.
    assert.equal(await rope.complete({ model: 'qv-r8' }), rope.offline('qv-r8'));
    const qvHalf = [{ name: 'qv-r8', scale: 0.5 }];
    assert.equal(await rope.complete({ lora: qvHalf }), rope.offline(parts(qvHalf)));
  });

  test('alone at weight 1 they serve what model serves', async () => {
    for (const name of ['saved-modules', 'trainable-tokens', 'vera-saved', 'edge-lora']) {
      const alone = await rope.complete({ model: name });
      assert.equal(alone, rope.offline(name), name);
      assert.notEqual(alone, rope.offline(null), `${name} changes the output`);
      assert.equal(await rope.complete({ lora: [{ name }] }), alone, name);
      assert.equal(await rope.complete({ model: name, lora: [{ name, scale: 1 }] }), alone, name);
    }
  });
});

describe('adapters from a store, loaded on first use', () => {
  test('a combination refused only once its adapters have loaded is still a 400 before any stream', async () => {
    const store = join(scratch, 'store');
    await mkdir(store);
    for (const name of ['saved-modules', 'qv-r8']) await cp(edgeDir(name), join(store, name), { recursive: true });
    const lazy = await serve('llama3-rope', {}, store);
    try {
      const savedEmbed = /adapter 'saved-modules' has a saved copy of embed_tokens.*cannot be scaled or combined/;
      const mixed = { lora: [{ name: 'qv-r8' }, { name: 'saved-modules' }] };
      await refused(lazy, { ...mixed, stream: true }, 'lora', savedEmbed);
      await refused(lazy, { lora: [{ name: 'saved-modules', scale: 0.5 }], stream: true }, 'lora', savedEmbed);
      assert.equal(await lazy.complete({ model: 'saved-modules' }), rope.offline('saved-modules'));
    } finally {
      await lazy.close();
    }
  });
});

describe('adapters that compose', () => {
  test('LoRA on embed_tokens / lm_head: scaled and combined with a layer LoRA, as the engine generates', async () => {
    const alone = await rope.complete({ model: 'edge-lora-only' });
    assert.equal(alone, rope.offline('edge-lora-only'));
    assert.equal(alone, await rope.complete({ model: 'edge-lora' }), 'the dropped copies were the base');
    const mix = halves('edge-lora-only', 'qv-r8');
    const want = rope.offline(parts(mix));
    assert.equal(await rope.complete({ lora: mix }), want);
    assert.notEqual(want, alone, 'the combination differs from edge-lora-only alone');
    // The committed edge-lora's save_embedding_layers copies equal the base: dropped at load, so it composes too.
    assert.equal(await rope.complete({ lora: halves('edge-lora', 'qv-r8') }), want);
    const half = [{ name: 'edge-lora-only', scale: 0.5 }];
    const halfText = await rope.complete({ lora: half });
    assert.equal(halfText, rope.offline(parts(half)));
    assert.notEqual(halfText, alone, 'the scale is applied');
    // At weight 1 beside a weight-0 partner: the concatenated edge factors give the adapter's own answer.
    const zero = [{ name: 'edge-lora-only' }, { name: 'qv-r8', scale: 0 }];
    assert.equal(await rope.complete({ lora: zero }), alone);
  });

  test('VeRA: scaled and combined as the engine generates; weight 1 is the adapter itself', async () => {
    const alone = await tied.complete({ model: 'vera-qv' });
    assert.equal(alone, tied.offline('vera-qv'));
    assert.notEqual(alone, tied.offline(null), 'vera-qv changes the output');
    assert.equal(await tied.complete({ lora: [{ name: 'vera-qv' }] }), alone);
    const half = [{ name: 'vera-qv', scale: 0.5 }];
    const halfText = await tied.complete({ lora: half });
    assert.equal(halfText, tied.offline(parts(half)));
    assert.notEqual(halfText, alone, 'the scale is applied');
    const mix = halves('vera-qv', 'qv-r8');
    const want = tied.offline(parts(mix));
    assert.equal(await tied.complete({ lora: mix }), want);
    assert.notEqual(want, halfText, 'qv-r8 takes part');
    // Folded (A·diag(λd), Bt·diag(λb)) at weight 1 beside a weight-0 partner: what the VeRA kernels answer.
    const zero = [{ name: 'vera-qv' }, { name: 'qv-r8', scale: 0 }];
    assert.equal(await tied.complete({ lora: zero }), alone);
  });
});
