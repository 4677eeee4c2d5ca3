import { createError } from '../observability/errors.ts';
import type { ServerContext } from './context.ts';
import { truncated } from './error-mapping.ts';

/** `model` → null for the base, the adapter's name otherwise; never a silent fallback to the base. */
export function resolveModel(ctx: ServerContext, model: string): string | null {
  if (model === ctx.baseModel) return null;
  const adapters = ctx.engine.adapters;
  if (adapters.some((a) => a.name === model)) return model;
  const names = adapters.map((a) => a.name);
  const available = [ctx.baseModel, ...names.slice(0, 20)].join(', ') + (names.length > 20 ? ', …' : '');
  throw createError('MODEL_NOT_FOUND', { name: truncated(model), available }, { param: 'model' });
}
