/**
 * A model's tokenizer: tokenizer.json through @huggingface/tokenizers (same ids as the Rust tokenizers),
 * tokenizer_config.json for the special tokens and the chat template, and the eos ids generation stops on.
 *
 *   const tok = await Tokenizer.fromDir('/models/Qwen2.5-0.5B-Instruct', { modelConfig });
 *   const ids = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { ModelConfig } from '../model/config.ts';
import { ggufModelFile, readGgufTokenizerFiles } from '../model/gguf/load.ts';
import {
  type ChatMessage,
  ChatTemplate,
  ChatTemplateError,
  type ChatTemplateOptions,
  pickChatTemplate,
} from './chat-template.ts';

export type TokenizerErrorCode = 'tokenizer_not_found' | 'tokenizer_invalid';

export class TokenizerError extends Error {
  constructor(
    readonly code: TokenizerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TokenizerError';
  }
}

import type { TokenizerFiles } from '../model/tokenizer-files.ts';

export type { TokenizerFiles };

export interface TokenizerOptions {
  /** config.json's eos ids are added to the stop ids. */
  modelConfig?: Pick<ModelConfig, 'eosTokenIds'>;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;

/** A special token in tokenizer_config.json: a string, an AddedToken object {content, ...}, or null. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

function idList(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is number => Number.isInteger(v) && v >= 0);
}

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  if (!existsSync(path)) {
    if (!required) return null;
    throw new TokenizerError(
      'tokenizer_not_found',
      `${path}: missing; loraplex reads the fast-tokenizer file (save it with transformers: ` +
        'AutoTokenizer.from_pretrained(dir).save_pretrained(dir))',
    );
  }
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new TokenizerError('tokenizer_invalid', `${path}: not valid JSON (${(e as Error).message})`);
  }
}

export class Tokenizer {
  private readonly hf: HfTokenizer;
  private readonly template: ChatTemplate | null;
  private readonly specialIds: Set<number>;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null; // tokenizer_config.json's eos_token
  readonly padTokenId: number | null;
  /** Every id generation stops on: tokenizer_config's eos_token, config.json's and generation_config.json's eos ids. */
  readonly eosTokenIds: number[];
  /** Size of the id space, added tokens included (max id + 1). */
  readonly vocabSize: number;
  /** The directory it was read from (fromDir): another thread can read it again rather than copy `files`. */
  sourceDir: string | null = null;

  /** A Hugging Face folder, or a GGUF model file (or a folder holding one): its metadata makes the files. */
  static async fromDir(dir: string, options: TokenizerOptions = {}): Promise<Tokenizer> {
    const gguf = await ggufModelFile(dir);
    if (gguf !== null) {
      const tokenizer = new Tokenizer(await readGgufTokenizerFiles(gguf), basename(gguf), options);
      tokenizer.sourceDir = dir;
      return tokenizer;
    }
    const tokenizerJson = (await readJson(join(dir, 'tokenizer.json'), true)) as Record<string, unknown>;
    const tokenizerConfig = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {};
    const generationConfig = await readJson(join(dir, 'generation_config.json'), false);
    const templatePath = join(dir, 'chat_template.jinja');
    const chatTemplate = existsSync(templatePath) ? await readFile(templatePath, 'utf8') : null;
    const tokenizer = new Tokenizer({ tokenizerJson, tokenizerConfig, chatTemplate, generationConfig }, dir, options);
    tokenizer.sourceDir = dir;
    return tokenizer;
  }

  /** `origin` names the folder or files, for messages. */
  constructor(
    /** What it was built from: another thread builds the same tokenizer from these (structured-cloneable). */
    readonly files: TokenizerFiles,
    readonly origin: string,
    readonly options: TokenizerOptions = {},
  ) {
    const config = files.tokenizerConfig ?? {};
    try {
      this.hf = new HfTokenizer(files.tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(
        'tokenizer_invalid',
        `${origin}: tokenizer.json is not usable (${(e as Error).message})`,
      );
    }
    const [bos, eos, unk, pad] = SPECIAL_TOKEN_KEYS.map((k) => tokenContent(config[k]));
    this.bosToken = bos;
    this.eosToken = eos;
    this.unkToken = unk;
    this.padToken = pad;
    this.bosTokenId = this.idOfSpecial(bos, 'bos_token', origin);
    this.padTokenId = this.idOfSpecial(pad, 'pad_token', origin);
    this.eosTokenId = this.idOfSpecial(eos, 'eos_token', origin);

    const stop = [
      ...(this.eosTokenId === null ? [] : [this.eosTokenId]),
      ...(options.modelConfig?.eosTokenIds ?? []),
      ...idList(files.generationConfig?.eos_token_id),
    ];
    this.eosTokenIds = [...new Set(stop)];

    const added = this.hf.get_added_tokens_decoder();
    this.specialIds = new Set([...added].filter(([, t]) => t.special).map(([id]) => id));
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const templateOrigin =
      files.chatTemplate != null ? `${origin}/chat_template.jinja` : `${origin}/tokenizer_config.json`;
    const source = files.chatTemplate ?? pickChatTemplate(config.chat_template, templateOrigin);
    this.template = source === null ? null : new ChatTemplate(source, templateOrigin);
  }

  private idOfSpecial(token: string | null, field: string, origin: string): number | null {
    if (token === null) return null;
    const id = this.hf.token_to_id(token);
    if (id === undefined) {
      throw new TokenizerError(
        'tokenizer_invalid',
        `${origin}: ${field} ${JSON.stringify(token)} is not in tokenizer.json's vocabulary`,
      );
    }
    return id;
  }

  /**
   * Text → ids. Special tokens (a BOS) are added by tokenizer.json's post-processor, as the Rust
   * tokenizers library does; tokenizer_config.json's add_bos_token is not consulted.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /**
   * Token ids → text. No clean-up of spaces before punctuation: transformers 5 skips it for BPE
   * tokenizers, and it would make streamed text differ from the full decode.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** The special tokens' strings, as transformers passes them to chat templates. */
  get specialTokensMap(): Record<string, string> {
    const map: Record<string, string> = {};
    const values = [this.bosToken, this.eosToken, this.unkToken, this.padToken];
    SPECIAL_TOKEN_KEYS.forEach((key, i) => {
      if (values[i] !== null) map[key] = values[i] as string;
    });
    return map;
  }

  /** The prompt text for `messages` (encode it with addSpecialTokens: false, as transformers does). */
  applyChatTemplate(messages: ChatMessage[], options: Omit<ChatTemplateOptions, 'specialTokens'> = {}): string {
    if (this.template === null) {
      throw new ChatTemplateError(
        'chat_template_missing',
        'this model has no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja); use completions with a raw prompt',
      );
    }
    return this.template.render(messages, { ...options, specialTokens: this.specialTokensMap });
  }
}
