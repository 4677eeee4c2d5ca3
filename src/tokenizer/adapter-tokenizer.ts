/**
 * An adapter's own tokenizer (the files it ships beside its weights), built and checked against the base
 * model it runs on:
 *  - every id it can produce must be a row of the base model's embedding (ids < vocab_size): tokens a
 *    fine-tune added must reuse ids the model already has (reserved tokens, Qwen's spare rows); a tokenizer
 *    reaching past vocab_size would need resized embedding and lm_head weights, which are not served;
 *  - its vocabulary must be the base's (the same token at the same id), else it was saved from another model;
 *  - generation stays the base model's: config.json's and generation_config.json's eos ids still stop, and
 *    the adapter's own eos token stops too (as vLLM stops on a LoRA tokenizer's eos).
 * Errors name the adapter and the file kind, never the file's contents.
 *
 *   const tok = buildAdapterTokenizer('sql', files, { base, modelVocabSize: 151936 });
 *   const extraStops = adapterStopIds(tok, base);
 */
import { createError, type LoraplexError } from '../observability/errors.ts';
import { Tokenizer, type TokenizerFiles } from './tokenizer.ts';

export interface AdapterTokenizerBase {
  /** The base model's tokenizer: its eos ids, generation config and vocabulary are the reference. */
  base: Tokenizer;
  /** Rows of the base model's embedding (config.json's vocab_size). */
  modelVocabSize: number;
}

/** Base tokens allowed to move or vanish before a tokenizer counts as another model's (merges can prune a few). */
const VOCAB_DISAGREEMENT = 0.01;

function fileError(name: string, file: string, problem: string, hint?: string, field?: string): LoraplexError {
  return createError('ADAPTER_INVALID_CONFIG', { file: `adapter '${name}': ${file}`, field, problem, hint });
}

/** tokenizer.json's model vocabulary: a {token: id} object (BPE, WordPiece, WordLevel) or Unigram's [[piece, score]]. */
function modelVocab(tokenizerJson: Record<string, unknown>): Map<string, number> | null {
  const vocab = (tokenizerJson.model as { vocab?: unknown } | undefined)?.vocab;
  if (Array.isArray(vocab)) {
    return new Map(vocab.map((entry, id) => [String(Array.isArray(entry) ? entry[0] : entry), id]));
  }
  if (vocab && typeof vocab === 'object') return new Map(Object.entries(vocab as Record<string, number>));
  return null;
}

function checkSameVocabulary(name: string, files: TokenizerFiles, base: Tokenizer) {
  const mine = modelVocab(files.tokenizerJson);
  const theirs = modelVocab(base.files.tokenizerJson);
  if (mine === null || theirs === null || theirs.size === 0) return;
  let differ = 0;
  for (const [token, id] of theirs) if (mine.get(token) !== id) differ++;
  if (differ > theirs.size * VOCAB_DISAGREEMENT) {
    throw fileError(
      name,
      'tokenizer.json',
      `its vocabulary is not the base model's: ${differ} of the base's ${theirs.size} tokens are missing or have other ids`,
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

/** Builds `name`'s tokenizer from its files and checks it against the base; throws a 400 naming the file. */
export function buildAdapterTokenizer(name: string, files: TokenizerFiles, against: AdapterTokenizerBase): Tokenizer {
  const { base, modelVocabSize } = against;
  // The base's generation config: which ids end a generation is the model's, not the tokenizer's.
  const withModel: TokenizerFiles = { ...files, generationConfig: base.files.generationConfig ?? null };
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(withModel, `adapter '${name}'`, base.options);
    tokenizer.decode(tokenizer.encode('a b', { addSpecialTokens: true }));
  } catch (e) {
    throw buildError(name, files, e);
  }
  if (tokenizer.vocabSize > modelVocabSize) {
    throw fileError(
      name,
      'tokenizer.json',
      `has token ids up to ${tokenizer.vocabSize - 1}, but the base model has ${modelVocabSize} token rows (vocab_size)`,
      'added tokens must reuse ids below vocab_size (reserved or spare rows); new rows need a resized embedding and lm_head, which loraplex does not serve yet',
    );
  }
  checkSameVocabulary(name, files, base);
  return tokenizer;
}

/** The adapter tokenizer's eos ids the base does not stop on already: its requests stop on them too. */
export function adapterStopIds(tokenizer: Tokenizer, base: Tokenizer): number[] {
  const known = new Set(base.eosTokenIds);
  return tokenizer.eosTokenIds.filter((id) => !known.has(id));
}
