/** The playground's pure parts: SSE framing, the request shapes, tokens from logprobs, divergence. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestOf, type Settings, tokensOf } from '../../ui/src/completion-request.ts';
import { firstDivergence } from '../../ui/src/divergence.ts';
import { SseParser } from '../../ui/src/sse.ts';

test('SSE events split anywhere, even inside a line, come out whole; [DONE] ends the stream', () => {
  const stream = 'data: {"a":1}\n\ndata: {"b":"x\\ny"}\r\n\r\ndata: [DONE]\n\n';
  for (let cut = 1; cut < stream.length; cut++) {
    const parser = new SseParser();
    const events = [...parser.feed(stream.slice(0, cut)), ...parser.feed(stream.slice(cut))];
    assert.deepEqual(events, [{ a: 1 }, { b: 'x\ny' }], `cut at ${cut}`);
    assert.equal(parser.done, true);
  }
});

const settings: Settings = {
  mode: 'prompt',
  prompt: 'Hi',
  system: '',
  maxTokens: 8,
  temperature: 0.5,
  topP: 0.9,
  seed: null,
};

test('the prompt and chat shapes stream with logprobs and carry the shared settings', () => {
  assert.deepEqual(requestOf('a', settings), {
    path: '/v1/completions',
    body: { model: 'a', prompt: 'Hi', max_tokens: 8, temperature: 0.5, top_p: 0.9, stream: true, logprobs: 0 },
  });
  const chat = requestOf('b', { ...settings, mode: 'chat', system: 'Be brief.', seed: 3 });
  assert.equal(chat.path, '/v1/chat/completions');
  assert.deepEqual(chat.body.messages, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ]);
  assert.equal(chat.body.logprobs, true);
  assert.equal(chat.body.seed, 3);
  assert.equal('messages' in requestOf('c', { ...settings, mode: 'chat' }).body, true);
  assert.equal((requestOf('c', { ...settings, mode: 'chat' }).body.messages as unknown[]).length, 1);
});

test("tokens come from either API's logprobs; a chunk without them has none", () => {
  assert.deepEqual(tokensOf({ choices: [{ logprobs: { tokens: ['a', 'b'] } }] }), ['a', 'b']);
  assert.deepEqual(tokensOf({ choices: [{ logprobs: { content: [{ token: 'c' }] } }] }), ['c']);
  assert.deepEqual(tokensOf({ choices: [{ finish_reason: 'stop', logprobs: null }] }), []);
});

test('divergence: the first differing token; a column that ended where the other went on diverges there', () => {
  const run = (tokens: string[], done = true) => ({ tokens, done });
  assert.equal(firstDivergence(run(['a', 'b', 'c']), run(['a', 'x', 'c'])), 1);
  assert.equal(firstDivergence(run(['a', 'b']), run(['a', 'b'])), null);
  assert.equal(firstDivergence(run(['a', 'b', 'c']), run(['a'], false)), null, 'still streaming, agrees so far');
  assert.equal(firstDivergence(run(['a']), run(['a', 'b'], false)), 1, "past the reference's end");
  assert.equal(firstDivergence(run(['a', 'b'], false), run(['a'])), 1, 'ended before the reference');
  assert.equal(firstDivergence(run([]), run(['a'])), 0);
});
