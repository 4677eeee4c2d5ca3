import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEnvAliases } from '../../src/config/env.ts';

test("NIM's and vLLM's variables stand in for the LORAPLEX_ ones, which win when both are set", () => {
  const env: NodeJS.ProcessEnv = {
    NIM_PEFT_SOURCE: '/loras',
    NIM_PEFT_REFRESH_INTERVAL: '30',
    NIM_MAX_GPU_LORAS: '8',
    NIM_MAX_CPU_LORAS: '32',
    NIM_MAX_LORA_RANK: '16',
    LORAPLEX_MAX_LORA_RANK: '64',
    NIM_MAX_MODEL_LEN: '2048',
    NIM_SERVED_MODEL_NAME: 'meta/llama',
    VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'True',
  };
  applyEnvAliases(env);
  assert.equal(env.LORAPLEX_LORA_DIR, '/loras');
  assert.equal(env.LORAPLEX_LORA_REFRESH_INTERVAL, '30');
  assert.equal(env.LORAPLEX_MAX_LORAS, '8');
  assert.equal(env.LORAPLEX_MAX_CPU_LORAS, '32');
  assert.equal(env.LORAPLEX_MAX_LORA_RANK, '64');
  assert.equal(env.LORAPLEX_ENABLE_LORA_RUNTIME_UPDATES, 'True');
  assert.equal(env.LORAPLEX_MAX_MODEL_LEN, '2048');
  assert.equal(env.LORAPLEX_SERVED_MODEL_NAME, 'meta/llama');
});
