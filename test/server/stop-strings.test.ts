/**
 * Stop strings and stop token ids on a real server with the `openai` client, checked against the offline
 * engine's greedy tokens: the text is cut before the stop (or through it, with include_stop_str_in_output),
 * finish_reason 'stop' with vLLM's stop_reason, usage counting the tokens up to the one that completed the
 * match, streaming equal to the whole response, and the sequence aborted at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { chunksOf, completer, engineIdle, type Loopback, startLoopback } from './loopback.ts';

const PROMPT = 'Once upon a time';
const MAX_TOKENS = 24;

let server: Loopback;
let ids: number[];
let full: string;

before(async () => {
  server = await startLoopback();
  ids = server.offline(PROMPT, { maxTokens: MAX_TOKENS }).outputIds;
  full = server.codec.decode(ids);
});

after(() => server.close());

type Choice = OpenAI.CompletionChoice & { stop_reason: string | number | null };

/** Text of the first k generated tokens. */
const textOf = (k: number) => server.codec.decode(ids.slice(0, k));

/** A stop string over the boundary between token j and token j + 1 (two characters each side). */
function straddling(j: number): string {
  const before = textOf(j + 1);
  assert.ok(full.startsWith(before) && before.length >= 2, 'a clean token boundary');
  return full.slice(before.length - 2, before.length + 2);
}

/** Generated tokens up to and including the one whose text completes `stop`. */
function tokensUntil(stop: string): number {
  for (let k = 1; k <= ids.length; k++) if (textOf(k).includes(stop)) return k;
  assert.fail(`'${stop}' never appears`);
}

const complete = completer(() => server.client, {
  model: 'base',
  prompt: PROMPT,
  max_tokens: MAX_TOKENS,
  temperature: 0,
  ignore_eos: true,
});

async function streamed(extra: Record<string, unknown>) {
  const chunks = await chunksOf<OpenAI.Completion>(
    await server.client.completions.create({
      model: 'base',
      prompt: PROMPT,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
      ...extra,
    } as never),
  );
  const choices = chunks.flatMap((c) => c.choices as Choice[]);
  const last = choices[choices.length - 1];
  return {
    text: choices.map((c) => c.text).join(''),
    finish: last.finish_reason,
    stopReason: last.stop_reason,
    lastText: last.text,
    usage: chunks[chunks.length - 1].usage,
  };
}

describe('stop strings', () => {
  test('a stop string split over two tokens: text cut before it, stop_reason, usage to the completing token', async () => {
    const stop = straddling(8);
    const r = await complete({ stop });
    const choice = r.choices[0] as Choice;
    assert.equal(choice.text, full.slice(0, full.indexOf(stop)));
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.stop_reason, stop);
    assert.equal(r.usage?.completion_tokens, tokensUntil(stop));

    const s = await streamed({ stop: [stop] });
    assert.equal(s.text, choice.text, 'streaming gives the same text');
    assert.equal(s.finish, 'stop');
    assert.equal(s.stopReason, stop);
    assert.equal(s.usage?.completion_tokens, tokensUntil(stop));
  });

  test('include_stop_str_in_output keeps the stop string', async () => {
    const stop = straddling(5);
    const r = await complete({ stop, include_stop_str_in_output: true });
    assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop) + stop.length));
    const s = await streamed({ stop, include_stop_str_in_output: true });
    assert.equal(s.text, r.choices[0].text);
  });

  test('several stops: the earliest in the text wins, whatever the list order', async () => {
    const early = straddling(3);
    const late = straddling(10);
    const r = await complete({ stop: [late, 'never-in-this-text', early] });
    assert.equal(r.choices[0].text, full.slice(0, full.indexOf(early)));
    assert.equal((r.choices[0] as Choice).stop_reason, early);
  });

  test('a tail that could start a stop string is held back, then flushed when generation ends', async () => {
    const tail = full.slice(-3);
    const s = await streamed({ stop: [`${tail}\u0007`] });
    assert.equal(s.text, full, 'nothing lost');
    assert.equal(s.finish, 'length');
    assert.equal(s.stopReason, null);
    assert.ok(s.lastText.endsWith(tail), 'the held tail comes out with the final chunk');
    const r = await complete({ stop: `${tail}\u0007` });
    assert.equal(r.choices[0].text, full);
  });

  test('stop_token_ids: the stop token ends the text (its text left out unless asked), stop_reason is its id', async () => {
    const k = ids.indexOf(ids[6]);
    const r = await complete({ stop_token_ids: [ids[6]] });
    const choice = r.choices[0] as Choice;
    assert.equal(choice.text, textOf(k));
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.stop_reason, ids[6]);
    assert.equal(r.usage?.completion_tokens, k + 1);
    const kept = await complete({ stop_token_ids: [ids[6]], include_stop_str_in_output: true });
    assert.equal(kept.choices[0].text, textOf(k + 1));
  });

  test('a match aborts the sequence at once: its KV blocks are freed long before max_tokens', async () => {
    const stop = straddling(4);
    const r = await complete({ stop, max_tokens: 3000 });
    assert.equal(r.usage?.completion_tokens, tokensUntil(stop));
    // 3000 tokens would take many seconds; an aborted sequence leaves the engine idle in a few steps.
    await engineIdle(server.engine, 10_000);
  });

  test('chat: stop strings, streaming and not, agree', async () => {
    const base = {
      model: 'base',
      messages: [{ role: 'user' as const, content: 'Tell me a story' }],
      max_tokens: 16,
      temperature: 0,
    };
    const plain = await server.client.chat.completions.create(base);
    const content = plain.choices[0].message.content ?? '';
    assert.ok(content.length > 6, 'some text to cut');
    const stop = content.slice(4, 6);
    const whole = await server.client.chat.completions.create({ ...base, stop });
    assert.equal(whole.choices[0].message.content, content.slice(0, content.indexOf(stop)));
    assert.equal(whole.choices[0].finish_reason, 'stop');
    const chunks = await chunksOf<OpenAI.ChatCompletionChunk>(
      await server.client.chat.completions.create({ ...base, stop, stream: true }),
    );
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0].message.content);
    const last = chunks[chunks.length - 1].choices[0] as unknown as { finish_reason: string; stop_reason: string };
    assert.equal(last.finish_reason, 'stop');
    assert.equal(last.stop_reason, stop);
  });

  test('invalid stops are 400s naming the field', async () => {
    const rejects = (extra: Record<string, unknown>, param: string) =>
      assert.rejects(complete(extra), (e: unknown) => {
        const err = e as { status: number; param: string };
        return err.status === 400 && err.param === param;
      });
    await rejects({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'stop');
    await rejects({ stop: ['ok', ''] }, 'stop');
    await rejects({ stop: '' }, 'stop');
    await rejects({ stop_token_ids: [10_000_000] }, 'stop_token_ids');
  });
});
