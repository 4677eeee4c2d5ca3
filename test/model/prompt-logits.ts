/** Last-prompt-position logits of one greedy step through an engine on `backend` (tests of loaded models). */
import { createBackend } from '../../src/backends/index.ts';
import { DEFAULT_ENGINE_OPTIONS, LLMEngine } from '../../src/engine/llm-engine.ts';
import type { LoadedModel } from '../../src/model/weights.ts';

export function promptLogits(model: LoadedModel, backend: 'native' | 'reference', promptIds: number[]): Float32Array {
  const engine = new LLMEngine(model, {
    ...DEFAULT_ENGINE_OPTIONS,
    kvCacheTokens: 256,
    backend: createBackend(backend),
  });
  const [seq] = engine.generate([
    { promptIds, adapter: null, params: { maxTokens: 1, temperature: 0, ignoreEos: true, promptLogits: true } },
  ]);
  return seq.promptLogits!;
}
