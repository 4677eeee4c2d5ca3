/**
 * logit_bias and the presence, frequency and repetition penalties through the API (official `openai` client):
 * each answer equals the offline engine's with the same parameters (whose numerics
 * test/engine/logits-processing.test.ts pins against a reference), streaming agrees, and out-of-range values
 * are 400s naming the field.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { APIError } from 'openai';
import { chunksOf, completer, type Loopback, startLoopback } from './loopback.ts';

let server: Loopback;
const PROMPT = 'Once upon a time';

before(async () => {
  server = await startLoopback();
});
after(() => server.close());

const complete = completer(() => server.client, {
  model: 'base',
  prompt: PROMPT,
  max_tokens: 12,
  temperature: 0,
  ignore_eos: true,
});

describe('sampling controls', () => {
  test('logit_bias +100 forces a token; -100 on the greedy choice changes the answer', async () => {
    const forced = server.codec.encode(' dragon').at(-1) as number;
    const r = await complete({ logit_bias: { [forced]: 100 }, max_tokens: 4 });
    assert.equal(r.choices[0].text, server.codec.decode([forced, forced, forced, forced]));
    const plain = server.offline(PROMPT, { maxTokens: 1 }).outputIds[0];
    const banned = await complete({ logit_bias: { [plain]: -100 }, max_tokens: 1 });
    assert.notEqual(banned.choices[0].text, server.codec.decode([plain]));
  });

  // A random demo model never repeats a token within a few steps, so the penalties would have nothing to do: a
  // +100 bias on the first step's four likeliest tokens makes every step choose among them, and the penalties
  // decide which.
  const favoured = () => {
    const row = server.offline(PROMPT, { maxTokens: 1, stepLogits: true }).stepLogits[0];
    const top = [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 4);
    return {
      body: Object.fromEntries(top.map((id) => [id, 100])),
      params: top.map((id) => [id, 100] as [number, number]),
    };
  };

  for (const [name, body, params] of [
    ['presence_penalty', { presence_penalty: 2 }, { presencePenalty: 2 }],
    ['frequency_penalty', { frequency_penalty: 0.5 }, { frequencyPenalty: 0.5 }],
    ['repetition_penalty', { repetition_penalty: 1.2 }, { repetitionPenalty: 1.2 }],
    [
      'all together',
      { presence_penalty: -0.5, frequency_penalty: 0.8, repetition_penalty: 1.3 },
      { presencePenalty: -0.5, frequencyPenalty: 0.8, repetitionPenalty: 1.3 },
    ],
  ] as const) {
    test(`${name}: the offline engine's answer, whole and streamed`, async () => {
      const bias = favoured();
      const expected = server.offline(PROMPT, { maxTokens: 12, ...params, logitBias: bias.params }).outputIds;
      const biasOnly = server.offline(PROMPT, { maxTokens: 12, logitBias: bias.params }).outputIds;
      assert.notDeepEqual(expected, biasOnly, 'the penalty changes this answer');
      const r = await complete({ ...body, logit_bias: bias.body });
      assert.equal(r.choices[0].text, server.codec.decode(expected));
      const chunks = await chunksOf<{ choices: { text: string }[] }>(
        await complete({ ...body, logit_bias: bias.body, stream: true }),
      );
      assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), server.codec.decode(expected));
    });
  }

  for (const [field, value] of [
    ['presence_penalty', 2.5],
    ['frequency_penalty', -3],
    ['repetition_penalty', 0],
    ['logit_bias', { 1: 101 }],
    ['logit_bias', { abc: 1 }],
    ['logit_bias', { 99999999: 1 }],
    ['stream_options', { include_usage: true, continuous_usage_stats: true }],
  ] as const) {
    test(`${field}: ${JSON.stringify(value)} is a 400 naming it`, async () => {
      await assert.rejects(
        complete({ [field]: value }),
        (e: APIError) => e.status === 400 && new RegExp(field).test(`${e.param} ${e.message}`),
      );
    });
  }
});
