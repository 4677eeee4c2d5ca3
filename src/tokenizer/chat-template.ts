/**
 * Chat templates (Jinja, from tokenizer_config.json or chat_template.jinja) rendered like transformers'
 * apply_chat_template(tokenize=False): the same variables (messages, tools, documents,
 * add_generation_prompt, the special tokens' strings), raise_exception and strftime_now, and
 * trim_blocks/lstrip_blocks (which @huggingface/jinja applies).
 *
 *   const template = new ChatTemplate(source, 'tokenizer_config.json');
 *   template.render([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true, specialTokens: { eos_token: '</s>' } });
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content?: unknown; // a string, a list of content parts, or null (assistant tool calls)
  [field: string]: unknown; // tool_calls, name, tool_call_id, ...
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  tools?: unknown[] | null;
  documents?: unknown[] | null;
  /** As transformers' special_tokens_map: bos_token, eos_token, pad_token, unk_token (strings). */
  specialTokens?: Record<string, string>;
  /** Further template variables (e.g. enable_thinking); they override the special tokens, as in transformers. */
  variables?: Record<string, unknown>;
}

export type ChatTemplateErrorCode = 'chat_template_missing' | 'chat_template_invalid' | 'chat_template_raised';

export class ChatTemplateError extends Error {
  constructor(
    readonly code: ChatTemplateErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/** The library declares its own raise_exception (an Error we could not tell apart), so calls are renamed to ours. */
const RAISE = 'loraplex_raise_exception';

function renameIdentifier(node: unknown, from: string, to: string): void {
  if (node === null || typeof node !== 'object') return;
  const n = node as { type?: unknown; value?: unknown };
  if (n.type === 'Identifier' && n.value === from) n.value = to;
  for (const child of Object.values(node)) renameIdentifier(child, from, to);
}

export class ChatTemplate {
  private readonly template: Template;

  /** `origin` names where the template came from, for messages. */
  constructor(
    readonly source: string,
    readonly origin: string,
  ) {
    try {
      this.template = new Template(source);
      renameIdentifier(this.template.parsed, 'raise_exception', RAISE);
    } catch (e) {
      throw new ChatTemplateError(
        'chat_template_invalid',
        `${origin}: chat template does not parse (${(e as Error).message})`,
      );
    }
  }

  render(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    const raiseException = (message: unknown) => {
      throw new ChatTemplateError('chat_template_raised', String(message));
    };
    try {
      return this.template.render({
        ...options.specialTokens,
        ...options.variables,
        messages,
        tools: options.tools ?? null,
        documents: options.documents ?? null,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        [RAISE]: raiseException,
      });
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e;
      throw new ChatTemplateError(
        'chat_template_invalid',
        `${this.origin}: chat template failed (${(e as Error).message})`,
      );
    }
  }
}

/**
 * The template a tokenizer_config.json declares: a string, or a list of {name, template} where the
 * one named "default" is used (as transformers does without a chat_template argument).
 */
export function pickChatTemplate(value: unknown, origin: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === 'object' && t.name === 'default');
    if (named && typeof named.template === 'string') return named.template;
    throw new ChatTemplateError(
      'chat_template_invalid',
      `${origin}: 'chat_template' is a list without a "default" entry (names: ${value.map((t) => JSON.stringify(t?.name)).join(', ')})`,
    );
  }
  throw new ChatTemplateError(
    'chat_template_invalid',
    `${origin}: 'chat_template' must be a string or a list of {name, template}`,
  );
}
