/**
 * PEFT matches module names with Python's `re`; the patterns in adapter_config.json are written for it.
 * JavaScript's RegExp agrees on the syntax people use in target_modules and rank_pattern; the few Python-only
 * spellings are rewritten here, and a pattern JavaScript still cannot read is a config error naming the field.
 */
import { createError } from '../../observability/errors.ts';

function toJsSource(pattern: string): string {
  return pattern
    .replace(/\(\?P<([A-Za-z_]\w*)>/g, '(?<$1>') // named group
    .replace(/\(\?P=([A-Za-z_]\w*)\)/g, '\\k<$1>') // named back-reference
    .replace(/\\A/g, '^')
    .replace(/\\Z/g, '$');
}

/** Compiles `^(?:prefix)(?:pattern)(?:suffix)$`-style wrappers around a Python pattern. */
export function compilePythonRegex(wrap: (source: string) => string, pattern: string, file: string, field: string) {
  try {
    return new RegExp(wrap(toJsSource(pattern)));
  } catch (e) {
    throw createError('ADAPTER_INVALID_CONFIG', {
      file,
      field,
      problem: `pattern ${JSON.stringify(pattern)} is not a regular expression loraplex can read (${(e as Error).message})`,
      hint: 'use plain module names such as "q_proj", or a simple regex',
    });
  }
}

/** Python's re.fullmatch(pattern, text). */
export function fullMatcher(pattern: string, file: string, field: string): (text: string) => boolean {
  const re = compilePythonRegex((s) => `^(?:${s})$`, pattern, file, field);
  return (text) => re.test(text);
}
