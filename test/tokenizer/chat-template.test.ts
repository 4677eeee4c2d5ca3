import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ChatTemplate, ChatTemplateError, pickChatTemplate } from '../../src/tokenizer/chat-template.ts';
import { QWEN_DIR } from './qwen-files.ts';

const qwenConfig = JSON.parse(await readFile(join(QWEN_DIR, 'tokenizer_config.json'), 'utf8'));
const qwen = new ChatTemplate(qwenConfig.chat_template, 'qwen tokenizer_config.json');
const qwenTokens = { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' };

const conversation = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi! 你好 🦙' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Again' },
];

function raisesCode(fn: () => unknown, code: string, fragment: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ChatTemplateError, String(e));
    assert.equal(e.code, code);
    assert.ok(e.message.includes(fragment), e.message);
    return true;
  });
}

// Expected strings: transformers 5.24 tok.apply_chat_template(..., tokenize=False) on the same files.
describe('ChatTemplate renders like transformers apply_chat_template (Qwen2.5 template)', () => {
  test('system + multi-turn with a generation prompt', () => {
    assert.equal(
      qwen.render(conversation, { addGenerationPrompt: true, specialTokens: qwenTokens }),
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi! 你好 🦙<|im_end|>\n' +
        '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('the default system prompt, without a generation prompt', () => {
    assert.equal(
      qwen.render([{ role: 'user', content: 'Hi! 你好 🦙' }], { specialTokens: qwenTokens }),
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHi! 你好 🦙<|im_end|>\n',
    );
  });

  test('tools rendered with tojson', () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather now',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ];
    assert.equal(
      qwen.render([{ role: 'user', content: 'Hi! 你好 🦙' }], { tools, addGenerationPrompt: true }),
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n' +
        'You may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": ' +
        '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n</tools>\n\n' +
        'For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nHi! 你好 🦙<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('assistant tool calls and consecutive tool results', () => {
    const messages = [
      { role: 'user', content: "What's the weather in Paris?" },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', unit: '°C' } } }],
      },
      { role: 'tool', content: '{"temp": 21}' },
      { role: 'tool', content: 'sunny' },
    ];
    assert.equal(
      qwen.render(messages, { addGenerationPrompt: true, specialTokens: qwenTokens }),
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });
});

describe('ChatTemplate: variables and errors', () => {
  const llamaLike = new ChatTemplate(
    "{{ bos_token }}{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}" +
      "{{ raise_exception('Only user and assistant roles are supported, got ' + m.role) }}{% endif %}" +
      '[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}',
    'test',
  );

  test('bos_token and eos_token variables come from the special tokens', () => {
    const out = llamaLike.render([{ role: 'user', content: 'hi' }], {
      addGenerationPrompt: true,
      specialTokens: { bos_token: '<s>', eos_token: '</s>' },
    });
    assert.equal(out, '<s>[user] hi</s>[assistant]');
  });

  test("raise_exception surfaces the template's message", () => {
    raisesCode(() => llamaLike.render([{ role: 'tool', content: 'x' }]), 'chat_template_raised', 'got tool');
  });

  test('extra variables reach the template', () => {
    const t = new ChatTemplate('{% if enable_thinking %}think{% else %}no{% endif %}', 'test');
    assert.equal(t.render([], { variables: { enable_thinking: true } }), 'think');
    assert.equal(t.render([]), 'no');
  });

  test('a template that does not parse, or fails while rendering', () => {
    raisesCode(() => new ChatTemplate('{% for m in messages %}', 'cfg.json'), 'chat_template_invalid', 'cfg.json');
    const t = new ChatTemplate('{{ messages[0].content.upper() }}', 'cfg.json');
    raisesCode(() => t.render([]), 'chat_template_invalid', 'cfg.json');
  });

  test('pickChatTemplate: a string, the "default" of a list, or null', () => {
    assert.equal(pickChatTemplate('x', 'f'), 'x');
    assert.equal(pickChatTemplate(undefined, 'f'), null);
    assert.equal(
      pickChatTemplate(
        [
          { name: 'tool_use', template: 't' },
          { name: 'default', template: 'd' },
        ],
        'f',
      ),
      'd',
    );
    raisesCode(() => pickChatTemplate([{ name: 'rag', template: 'r' }], 'f'), 'chat_template_invalid', 'default');
  });
});
