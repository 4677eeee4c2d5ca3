/**
 * Tells the truth about request fields: a field loraplex does not implement is refused with a 400 that names
 * it, rather than silently ignored (a client asking for JSON output must not get prose and no warning).
 * OpenAI fields that clients often send at their neutral value (echo: false, best_of: 1, tools: [],
 * response_format: {type: "text"}, …) pass at that value only.
 */
import { createError } from '../observability/errors.ts';

const isNull = (v: unknown) => v === null;
const isEmpty = (v: unknown) =>
  isNull(v) ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** Fields loraplex does not implement, each with the values that ask for nothing. */
const NEUTRAL_ONLY: Record<string, (v: unknown) => boolean> = {
  echo: (v) => isNull(v) || v === false,
  best_of: (v) => isNull(v) || v === 1,
  suffix: (v) => isNull(v) || v === '',
  response_format: (v) => isNull(v) || (typeof v === 'object' && (v as { type?: unknown }).type === 'text'),
  tools: isEmpty,
  tool_choice: (v) => isNull(v) || v === 'none',
  functions: isEmpty,
  function_call: (v) => isNull(v) || v === 'none',
  parallel_tool_calls: (v) => isNull(v) || typeof v === 'boolean',
  use_beam_search: (v) => isNull(v) || v === false,
};

/** Fields that change nothing in the output, accepted as they are. */
const INERT = new Set(['user']);

/** Throws PARAMETER_UNSUPPORTED for the first field that is neither implemented (`known`) nor neutral. */
export function refuseUnsupported(body: Record<string, unknown>, known: ReadonlySet<string>) {
  for (const [field, value] of Object.entries(body)) {
    if (known.has(field) || INERT.has(field)) continue;
    const neutral = NEUTRAL_ONLY[field];
    if (neutral?.(value)) continue;
    const param = field.length > 64 ? `${field.slice(0, 64)}…` : field;
    throw createError('PARAMETER_UNSUPPORTED', { param }, { param });
  }
}
