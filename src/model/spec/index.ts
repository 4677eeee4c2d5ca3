/** The model specs by family, architecture class and model_type. */
import type { ModelFamily } from '../config.ts';
import { GEMMA2, GEMMA3 } from './gemma.ts';
import { LLAMA, MISTRAL, QWEN2, QWEN3 } from './llama.ts';
import { PHI3 } from './phi3.ts';
import type { ModelSpec } from './types.ts';

export const MODEL_SPECS: readonly ModelSpec[] = [LLAMA, MISTRAL, QWEN2, QWEN3, GEMMA2, GEMMA3, PHI3];

const BY_FAMILY = new Map(MODEL_SPECS.map((s) => [s.family, s]));

export function specOf(family: ModelFamily): ModelSpec {
  const spec = BY_FAMILY.get(family);
  if (!spec) throw new Error(`no model spec for family '${family}'`);
  return spec;
}

export type { ModelSpec, ModuleDecl, ModuleKind, ModuleParent, ProjectionRole } from './types.ts';
