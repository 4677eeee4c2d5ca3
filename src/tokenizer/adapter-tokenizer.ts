/**
 * An adapter's own tokenizer (the files it ships beside its weights), built and checked against the base
 * model it runs on:
 *  - every id it can produce must be a row of the base model's embedding (ids < vocab_size): tokens a
 *    fine-tune added must reuse ids the model already has (reserved tokens, Qwen's spare rows); a tokenizer
 *    reaching past vocab_size would need resized embedding and lm_head weights, which are not served;
 *  - its vocabulary must be the base's (the same token at the same id), else it was saved from another model;
 *  - generation stays the base model's: config.json's and generation_config.json's eos ids still stop, and
 *    the adapter's own eos token stops too (as vLLM stops on a LoRA tokenizer's eos).
 * Errors name the adapter and the file kind, never the file's contents. Everything here runs on the adapter
 * tokenizer's own thread (adapter-tokenizer-thread.ts): what crosses is plain data (`BaseFacts`, texts).
 *
 *   const files = parseAdapterTokenizerFiles('sql', texts);
 *   const tok = buildAdapterTokenizer('sql', files, baseFacts(base, 151936));
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createError, type LoraplexError } from '../observability/errors.ts';
import { Tokenizer, type TokenizerFiles, type TokenizerOptions } from './tokenizer.ts';

/** The tokenizer files an adapter ships, as read (text); null when absent. tokenizer.json is required. */
export interface AdapterTokenizerTexts {
  tokenizerJson: string;
  tokenizerConfig: string | null;
  specialTokensMap: string | null;
  chatTemplate: string | null;
}

/** What an adapter tokenizer is checked against: the base model's, as plain (structured-cloneable) data. */
export interface BaseFacts {
  /** The base tokenizer.json's model vocabulary, token by id (null: a model type without one). */
  vocabTokens: (string | null)[] | null;
  /** Every id the base's generation stops on. */
  eosTokenIds: number[];
  generationConfig: Record<string, unknown> | null;
  options: TokenizerOptions;
  /** Rows of the base model's embedding (config.json's vocab_size). */
  modelVocabSize: number;
}

/**
 * What the HTTP thread sends the adapter's thread about the base: where its vocabulary is (the model
 * directory it was read from, or the parsed tokenizer.json), not the vocabulary itself (listing 150k tokens
 * takes the HTTP thread a few hundred ms).
 */
export type BaseReference = Omit<BaseFacts, 'vocabTokens'> & {
  vocab: { dir: string } | { tokenizerJson: Record<string, unknown> };
};

/** Base tokens allowed to move or vanish before a tokenizer counts as another model's (merges can prune a few). */
const VOCAB_DISAGREEMENT = 0.01;
/** The special-token keys special_tokens_map.json may fill in when tokenizer_config.json lacks them. */
const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'];

function fileError(name: string, file: string, problem: string, hint?: string, field?: string): LoraplexError {
  return createError('ADAPTER_INVALID_CONFIG', { file: `adapter '${name}': ${file}`, field, problem, hint });
}

/** tokenizer.json's model vocabulary as token by id: a {token: id} object (BPE, WordPiece) or Unigram's [[piece, score]]. */
function vocabTokens(tokenizerJson: Record<string, unknown>): (string | null)[] | null {
  const vocab = (tokenizerJson.model as { vocab?: unknown } | undefined)?.vocab;
  if (Array.isArray(vocab)) return vocab.map((entry) => String(Array.isArray(entry) ? entry[0] : entry));
  if (!vocab || typeof vocab !== 'object') return null;
  const tokens: (string | null)[] = [];
  for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
    if (Number.isInteger(id) && (id as number) >= 0 && (id as number) < 1 << 24) tokens[id as number] = token;
  }
  return Array.from(tokens, (t) => t ?? null);
}

/** The base's facts, at once (tests, and the adapter's thread after resolveBase). */
export function baseFacts(base: Tokenizer, modelVocabSize: number): BaseFacts {
  return { ...baseReferenceFields(base, modelVocabSize), vocabTokens: vocabTokens(base.files.tokenizerJson) };
}

function baseReferenceFields(base: Tokenizer, modelVocabSize: number): Omit<BaseFacts, 'vocabTokens'> {
  return {
    eosTokenIds: base.eosTokenIds,
    generationConfig: base.files.generationConfig ?? null,
    options: base.options,
    modelVocabSize,
  };
}

/** Cheap on the HTTP thread: the adapter's thread reads the base's vocabulary itself (resolveBase). */
export function baseReference(base: Tokenizer, modelVocabSize: number): BaseReference {
  const vocab = base.sourceDir !== null ? { dir: base.sourceDir } : { tokenizerJson: base.files.tokenizerJson };
  return { ...baseReferenceFields(base, modelVocabSize), vocab };
}

/** On the adapter's thread: the base's vocabulary from its model directory (tokenizer.json, else a GGUF's). */
export async function resolveBase(ref: BaseReference): Promise<BaseFacts> {
  const { vocab, ...fields } = ref;
  let tokenizerJson: Record<string, unknown>;
  if ('tokenizerJson' in vocab) tokenizerJson = vocab.tokenizerJson;
  else {
    const path = join(vocab.dir, 'tokenizer.json');
    tokenizerJson = existsSync(path)
      ? JSON.parse(await readFile(path, 'utf8'))
      : (await Tokenizer.fromDir(vocab.dir)).files.tokenizerJson;
  }
  return { ...fields, vocabTokens: vocabTokens(tokenizerJson) };
}

/** The texts parsed: JSON objects or a 400 naming the file; special_tokens_map.json fills in what the config lacks. */
export function parseAdapterTokenizerFiles(name: string, texts: AdapterTokenizerTexts): TokenizerFiles {
  const json = (file: string, text: string | null): Record<string, unknown> | null => {
    if (text === null) return null;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // The parser's message quotes the file: only its kind is named.
      throw fileError(name, file, 'is not valid JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw fileError(name, file, 'is not a JSON object');
    }
    return value as Record<string, unknown>;
  };
  const tokenizerJson = json('tokenizer.json', texts.tokenizerJson) as Record<string, unknown>;
  const tokenizerConfig = json('tokenizer_config.json', texts.tokenizerConfig) ?? {};
  const specialTokensMap = json('special_tokens_map.json', texts.specialTokensMap);
  for (const key of SPECIAL_KEYS) {
    // As transformers: tokenizer_config.json wins; the map fills in what it lacks.
    if (tokenizerConfig[key] === undefined && specialTokensMap?.[key] !== undefined) {
      tokenizerConfig[key] = specialTokensMap[key];
    }
  }
  return { tokenizerJson, tokenizerConfig, chatTemplate: texts.chatTemplate };
}

function checkSameVocabulary(name: string, files: TokenizerFiles, base: BaseFacts) {
  const mine = vocabTokens(files.tokenizerJson);
  const theirs = base.vocabTokens;
  if (mine === null || theirs === null) return;
  const size = theirs.filter((t) => t !== null).length;
  let differ = 0;
  theirs.forEach((token, id) => {
    if (token !== null && mine[id] !== token) differ++;
  });
  if (differ > size * VOCAB_DISAGREEMENT) {
    throw fileError(
      name,
      'tokenizer.json',
      `its vocabulary is not the base model's: ${differ} of the base's ${size} tokens are missing or have other ids`,
      "save the tokenizer of the base model the adapter was trained on (with the tokens you added), or remove it to use the base model's",
    );
  }
}

/** Which file and field a tokenizer build error is about (the messages are ours: see tokenizer.ts). */
function buildError(name: string, files: TokenizerFiles, e: unknown): LoraplexError {
  const err = e as Error & { code?: string };
  if (err?.name === 'ChatTemplateError') {
    const file = files.chatTemplate != null ? 'chat_template.jinja' : 'tokenizer_config.json';
    return fileError(name, file, 'the chat template does not parse as a Jinja template', undefined, 'chat_template');
  }
  const special = /: (bos_token|eos_token|unk_token|pad_token) /.exec(err?.message ?? '');
  if (err?.name === 'TokenizerError' && special) {
    return fileError(
      name,
      'tokenizer_config.json',
      "names a token that tokenizer.json's vocabulary lacks",
      undefined,
      special[1],
    );
  }
  return fileError(
    name,
    'tokenizer.json',
    'is not a tokenizer the tokenizers library can load',
    'save it with transformers (tokenizer.save_pretrained(adapter_dir)) from a fast tokenizer',
  );
}

/** The base's generation config goes with it: which ids end a generation is the model's, not the tokenizer's. */
const withModel = (files: TokenizerFiles, base: Pick<BaseFacts, 'generationConfig'>): TokenizerFiles => ({
  ...files,
  generationConfig: base.generationConfig,
});

/** Builds `name`'s tokenizer from its files and checks it against the base; throws a 400 naming the file. */
export function buildAdapterTokenizer(name: string, files: TokenizerFiles, base: BaseFacts): Tokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(withModel(files, base), `adapter '${name}'`, base.options);
    tokenizer.decode(tokenizer.encode('a b', { addSpecialTokens: true }));
  } catch (e) {
    throw buildError(name, files, e);
  }
  if (tokenizer.vocabSize > base.modelVocabSize) {
    throw fileError(
      name,
      'tokenizer.json',
      `has token ids up to ${tokenizer.vocabSize - 1}, but the base model has ${base.modelVocabSize} token rows (vocab_size)`,
      'added tokens must reuse ids below vocab_size (reserved or spare rows); new rows need a resized embedding and lm_head, which loraplex does not serve yet',
    );
  }
  checkSameVocabulary(name, files, base);
  return tokenizer;
}

/** The adapter tokenizer's eos ids the base does not stop on already: its requests stop on them too. */
export function adapterStopIds(tokenizer: Tokenizer, base: Pick<BaseFacts, 'eosTokenIds'>): number[] {
  const known = new Set(base.eosTokenIds);
  return tokenizer.eosTokenIds.filter((id) => !known.has(id));
}

/**
 * tokenizer.json for decoding only, as JSON text: a BPE model's merges dropped (decoding never reads them, and
 * ranking them is most of the build: Qwen2.5's 151k merges). Built on the adapter's thread, parsed on the HTTP
 * thread into a `DecodingTokenizer`.
 */
export function decodingJson(files: TokenizerFiles): string {
  const model = files.tokenizerJson.model as { type?: unknown } | undefined;
  const json =
    model?.type === 'BPE' ? { ...files.tokenizerJson, model: { ...model, merges: [] } } : files.tokenizerJson;
  return JSON.stringify(json);
}

/** A tokenizer that only decodes (its merges are gone): encoding on it is a bug, so it throws. */
export class DecodingTokenizer extends Tokenizer {
  override encode(): number[] {
    throw new Error(`${this.origin}: this copy only decodes; prompts are encoded on the adapter's tokenizer thread`);
  }
}

/** The HTTP thread's copy of an adapter tokenizer (decoding, token names), from what its thread sent. */
export function decodingTokenizer(
  name: string,
  files: TokenizerFiles,
  base: Pick<BaseFacts, 'generationConfig' | 'options'>,
): DecodingTokenizer {
  return new DecodingTokenizer(withModel(files, base), `adapter '${name}'`, base.options);
}
