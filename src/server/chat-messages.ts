/**
 * Chat messages as OpenAI clients send them → the messages the chat template renders. `content` may be a
 * string, a list of parts or (an assistant's) null; text parts are joined with newlines, as vLLM joins them.
 * Anything the template would silently drop — an image part, a tool call — is refused with a 400 naming it.
 */
import { createError } from '../observability/errors.ts';
import type { ChatMessage } from '../tokenizer/chat-template.ts';
import { truncated } from './error-mapping.ts';

export interface ContentPart {
  type: string;
  text?: string;
  [field: string]: unknown;
}

export interface RequestMessage {
  role: string;
  content?: string | ContentPart[] | null;
  name?: string | null;
  [field: string]: unknown;
}

/** The JSON schema of one message (types only; part types and extra fields are checked in `templateMessages`). */
export const messageSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string' },
    content: {
      anyOf: [
        { type: ['string', 'null'] },
        {
          type: 'array',
          items: {
            type: 'object',
            required: ['type'],
            properties: { type: { type: 'string' }, text: { type: 'string' } },
          },
        },
      ],
    },
    name: { type: ['string', 'null'] },
  },
};

/** Message fields passed to the template as they are. */
const MESSAGE_FIELDS = new Set(['role', 'content', 'name']);

function refuse(param: string, message: string): never {
  throw createError('REQUEST_INVALID', { message }, { param });
}

function contentText(content: RequestMessage['content'], at: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type !== 'text') {
        refuse(
          `${at}.content[${j}].type`,
          `content parts of type '${truncated(part.type, 32)}' are not supported by this server (${at}.content[${j}]); ` +
            "send text parts ({type: 'text', text})",
        );
      }
      if (typeof part.text !== 'string')
        refuse(`${at}.content[${j}].text`, `${at}.content[${j}] needs a 'text' string`);
      return part.text;
    })
    .join('\n');
}

export function templateMessages(messages: readonly RequestMessage[]): ChatMessage[] {
  return messages.map((m, i) => {
    const at = `messages[${i}]`;
    for (const [field, value] of Object.entries(m)) {
      if (MESSAGE_FIELDS.has(field) || value === null) continue;
      if (Array.isArray(value) && value.length === 0) continue;
      const name = truncated(field, 64);
      refuse(`${at}.${name}`, `'${at}.${name}' is not supported by this server; remove it from the request`);
    }
    if ((m.content === undefined || m.content === null) && m.role !== 'assistant') {
      refuse(`${at}.content`, `${at} (role '${truncated(m.role, 32)}') needs 'content'`);
    }
    const out: ChatMessage = { role: m.role, content: contentText(m.content, at) };
    if (m.name !== undefined && m.name !== null) out.name = m.name;
    return out;
  });
}
