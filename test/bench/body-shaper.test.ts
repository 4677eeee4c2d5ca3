/** The endpoint's per-request body shaper (bench:peers uses it for llama.cpp's `lora` field) has the last say. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EndpointConfig, type RequestSpec, requestBody } from '../../src/bench/endpoint.ts';

const spec = (model: string): RequestSpec => ({ model, prompt: { text: 'hi' }, inputTokens: 1, maxTokens: 4 });

test('a shaper sees the finished body and the request, and its answer is what is sent', () => {
  const ids = new Map([['a001', 1]]);
  const config: EndpointConfig = {
    url: 'http://127.0.0.1:1',
    endpointType: 'completions',
    streaming: false,
    fixOutputLength: true,
    extraInputs: { temperature: 0 },
    shapeBody: (body, s) => {
      const id = ids.get(s.model);
      return { ...body, lora: id === undefined ? [] : [{ id, scale: 1 }] };
    },
  };
  assert.deepEqual(requestBody(config, spec('a001')), {
    model: 'a001',
    prompt: 'hi',
    max_tokens: 4,
    min_tokens: 4,
    ignore_eos: true,
    temperature: 0,
    lora: [{ id: 1, scale: 1 }],
  });
  assert.deepEqual(requestBody(config, spec('base')).lora, []);
  assert.equal('lora' in requestBody({ ...config, shapeBody: null }, spec('a001')), false);
});
