/**
 * The tokenizer of a GGUF model file, as the tokenizer.json + tokenizer_config.json objects the project's
 * Tokenizer (src/tokenizer/) reads: built in memory from tokenizer.ggml.* and tokenizer.chat_template.
 *
 *   const tokenizer = new Tokenizer(ggufTokenizerFiles(fields), 'model.gguf');
 *
 * Read: tokenizer.ggml.model "gpt2" (byte-level BPE: tokens, merges, token_type) with GPT-2's split
 * ("default", "gpt2", "smollm": SmolLM's vocabulary holds no multi-digit merges, so llama.cpp's digit split
 * changes nothing there), Llama 3's ("llama-bpe", …) or Qwen2's ("qwen2", …). CONTROL tokens become special added tokens, USER_DEFINED ones
 * plain added tokens (both matched before BPE, as llama.cpp does); add_bos_token puts bos in front.
 * SentencePiece vocabularies ("llama": scores, byte pieces) through sentencepiece.ts. Other tokenizer models
 * and pre-tokenizers are refused by name.
 */

import { ConfigError } from '../config-parse.ts';
import type { TokenizerFiles } from '../tokenizer-files.ts';
import { GgufValueType } from './gguf-file.ts';
import type { GgufFields } from './model-config.ts';
import { sentencePieceDecoder, sentencePieceMerges, sentencePiecePreTokenizer } from './sentencepiece.ts';

/** llama.cpp's llama_token_type. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
/** GPT-2's split (the ByteLevel pre-tokenizer's own regex). */
const GPT2_SPLIT_PRE = new Set(['default', 'gpt2', 'smollm']);
/** Llama 3's split, as its tokenizer.json and llama.cpp's llama-vocab.cpp give it: digits in runs of up to 3. */
const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's: Llama 3's with one digit per piece. */
const QWEN2_SPLIT = LLAMA3_SPLIT.replace('\\p{N}{1,3}', '\\p{N}');
const REGEX_SPLIT_PRE: Record<string, string> = {
  'llama-bpe': LLAMA3_SPLIT,
  llama3: LLAMA3_SPLIT,
  'llama-v3': LLAMA3_SPLIT,
  'smaug-bpe': LLAMA3_SPLIT,
  qwen2: QWEN2_SPLIT,
  'deepseek-r1-qwen': QWEN2_SPLIT,
};

/** The pre-tokenizer of tokenizer.json for a GGUF file's tokenizer.ggml.pre. */
function preTokenizer(pre: string): Record<string, unknown> | null {
  if (GPT2_SPLIT_PRE.has(pre))
    return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const split = REGEX_SPLIT_PRE[pre];
  if (split === undefined) return null;
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}

function unsupported(file: string, what: string): ConfigError {
  return new ConfigError(
    'config_unsupported',
    `${file}: ${what}; serve the model's Hugging Face folder (config.json, safetensors, tokenizer.json) instead`,
  );
}

function optionalId(g: GgufFields, key: string, vocab: number): number | null {
  if (!g.has(key)) return null;
  const id = g.int(key, 0, true);
  if (id >= vocab)
    throw new ConfigError('config_invalid', `${g.file}: ${key} ${id} is outside the vocabulary (${vocab} tokens)`);
  return id;
}

function bool(g: GgufFields, key: string, fallback: boolean): boolean {
  const e = g.meta.get(key);
  if (e === undefined) return fallback;
  if (e.type !== GgufValueType.BOOL || typeof e.value !== 'boolean') {
    throw new ConfigError('config_invalid', `${g.file}: GGUF metadata '${key}' must be a bool`);
  }
  return e.value;
}

function scoresOf(g: GgufFields, count: number): number[] {
  const scores = g.array('tokenizer.ggml.scores', GgufValueType.FLOAT32) as number[] | undefined;
  if (scores === undefined || scores.length !== count) {
    throw new ConfigError(
      'config_invalid',
      `${g.file}: tokenizer.ggml.scores must give one score per token (${count})`,
    );
  }
  return scores;
}

export function ggufTokenizerFiles(g: GgufFields): TokenizerFiles {
  const model = g.string('tokenizer.ggml.model');
  if (model === undefined)
    throw new ConfigError('config_invalid', `${g.file}: no tokenizer (tokenizer.ggml.model is missing)`);
  if (model !== 'gpt2' && model !== 'llama') {
    throw unsupported(
      g.file,
      `tokenizer.ggml.model ${JSON.stringify(model.slice(0, 40))} is not read yet (gpt2 and llama are)`,
    );
  }
  const spm = model === 'llama';
  const addSpacePrefix = spm && bool(g, 'tokenizer.ggml.add_space_prefix', true);
  const pre = g.string('tokenizer.ggml.pre') ?? 'default';
  const preTokenizerJson = spm ? sentencePiecePreTokenizer(addSpacePrefix) : preTokenizer(pre);
  if (preTokenizerJson === null) {
    const known = [...GPT2_SPLIT_PRE, ...Object.keys(REGEX_SPLIT_PRE)].join(', ');
    throw unsupported(g.file, `tokenizer.ggml.pre ${JSON.stringify(pre.slice(0, 40))} is not read yet (${known} are)`);
  }
  const tokens = g.array('tokenizer.ggml.tokens', GgufValueType.STRING) as string[] | undefined;
  const merges = (g.array('tokenizer.ggml.merges', GgufValueType.STRING) ?? []) as string[];
  if (tokens === undefined || tokens.length === 0)
    throw new ConfigError('config_invalid', `${g.file}: tokenizer.ggml.tokens is missing or empty`);
  const types = (g.array('tokenizer.ggml.token_type', GgufValueType.INT32) ?? []) as number[];
  if (types.length !== 0 && types.length !== tokens.length) {
    throw new ConfigError(
      'config_invalid',
      `${g.file}: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  }

  // A repeated token keeps its last id, as transformers' vocabulary dict does.
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  for (const [id, token] of tokens.entries()) {
    vocab[token] = id;
    const type = types[id] ?? TOKEN_TYPE.NORMAL;
    // SentencePiece's <unk> is matched whole too (transformers adds it as a special token).
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED || (spm && type === TOKEN_TYPE.UNKNOWN)) {
      const special = type !== TOKEN_TYPE.USER_DEFINED;
      added.push({
        id,
        content: token,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: !special,
        special,
      });
    }
  }
  const bos = optionalId(g, 'tokenizer.ggml.bos_token_id', tokens.length);
  const eos = optionalId(g, 'tokenizer.ggml.eos_token_id', tokens.length);
  const unk = optionalId(g, 'tokenizer.ggml.unknown_token_id', tokens.length);
  const pad = optionalId(g, 'tokenizer.ggml.padding_token_id', tokens.length);
  // llama.cpp adds a BOS by default for SentencePiece vocabularies, not for byte-level ones.
  const addBos = bos !== null && bool(g, 'tokenizer.ggml.add_bos_token', spm);
  const sequence = { Sequence: { id: 'A', type_id: 0 } };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizerJson,
    post_processor: {
      type: 'TemplateProcessing',
      single: addBos ? [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, sequence] : [sequence],
      pair: addBos
        ? [{ SpecialToken: { id: tokens[bos], type_id: 0 } }, sequence, { Sequence: { id: 'B', type_id: 1 } }]
        : [sequence, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: addBos ? { [tokens[bos]]: { id: tokens[bos], ids: [bos], tokens: [tokens[bos]] } } : {},
    },
    decoder: spm
      ? sentencePieceDecoder(addSpacePrefix)
      : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk === null ? null : tokens[unk],
      continuing_subword_prefix: spm ? null : '',
      end_of_word_suffix: spm ? null : '',
      fuse_unk: spm,
      byte_fallback: spm,
      ignore_merges: false,
      vocab,
      merges: spm ? sentencePieceMerges(tokens, scoresOf(g, tokens.length)) : merges,
    },
  };
  const content = (id: number | null) => (id === null ? null : tokens[id]);
  const tokenizerConfig: Record<string, unknown> = {
    bos_token: content(bos),
    eos_token: content(eos),
    unk_token: content(unk),
    pad_token: content(pad),
    add_bos_token: addBos,
  };
  const template = g.string('tokenizer.chat_template');
  if (template !== undefined) tokenizerConfig.chat_template = template;
  return { tokenizerJson, tokenizerConfig, chatTemplate: null, generationConfig: null };
}
