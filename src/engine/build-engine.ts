/**
 * Builds an engine from a model directory and adapter directories: load and check the model, pack its
 * weights for the kernels, parse, validate and pack each adapter.
 */

import { packAdapter } from '../adapters/pack.ts';
import { loadPeftAdapter } from '../adapters/peft/load.ts';
import { getKernels, type KernelBackend } from '../kernels/index.ts';
import type { WeightDType } from '../kernels/types.ts';
import type { ModelConfig } from '../model/config.ts';
import { loadModelDir } from '../model/model-dir.ts';
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions, LLMEngine } from './llm-engine.ts';

export interface AdapterSource {
  name: string;
  dir: string;
}

export interface BuildOptions extends Partial<Omit<EngineOptions, 'kernels'>> {
  modelDir: string;
  adapters: AdapterSource[];
  backend?: KernelBackend;
  /** Convert the weights on load (e.g. f32 → bf16). */
  dtype?: WeightDType;
  maxLoraRank?: number;
  /** Skip (and report) adapters that fail to load instead of failing the whole build: a store's contents. */
  skipInvalidAdapters?: boolean;
}

export interface BuiltEngine {
  engine: LLMEngine;
  config: ModelConfig;
  modelDir: string;
  /** Adapters skipped under skipInvalidAdapters, with the reason. */
  rejected: { name: string; message: string }[];
}

export const DEFAULT_MAX_LORA_RANK = 64;

export async function buildEngine(opts: BuildOptions): Promise<BuiltEngine> {
  const loaded = await loadModelDir(opts.modelDir, opts.dtype ? { dtype: opts.dtype } : {});
  const { modelDir, adapters, backend, dtype, maxLoraRank, skipInvalidAdapters, ...engineOpts } = opts;
  const given = Object.fromEntries(Object.entries(engineOpts).filter(([, v]) => v !== undefined));
  const options: EngineOptions = {
    ...DEFAULT_ENGINE_OPTIONS,
    maxLoras: Math.max(1, Math.min(DEFAULT_ENGINE_OPTIONS.maxLoras, adapters.length)),
    ...given,
    kernels: getKernels(backend ?? 'native'),
  };
  const engine = new LLMEngine(loaded, options);
  const rejected: BuiltEngine['rejected'] = [];
  for (const a of adapters) {
    try {
      const adapter = await loadPeftAdapter(a.dir, loaded.config, {
        maxLoraRank: maxLoraRank ?? DEFAULT_MAX_LORA_RANK,
        name: a.name,
      });
      engine.addAdapter(a.name, packAdapter(adapter, loaded.config));
    } catch (e) {
      if (!skipInvalidAdapters) throw e;
      rejected.push({ name: a.name, message: (e as Error).message });
    }
  }
  return { engine, config: loaded.config, modelDir, rejected };
}
