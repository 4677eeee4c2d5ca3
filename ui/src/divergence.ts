/**
 * Where a playground column's tokens part from the reference column's: the first position whose tokens differ.
 * A column that agrees so far has not diverged (null); one that ended where the other went on diverges there.
 */
export interface TokenRun {
  tokens: readonly string[];
  done: boolean;
}

export function firstDivergence(reference: TokenRun, column: TokenRun): number | null {
  const common = Math.min(reference.tokens.length, column.tokens.length);
  for (let i = 0; i < common; i++) if (reference.tokens[i] !== column.tokens[i]) return i;
  // One ended (EOS, stop, max_tokens) where the other went on: they differ there.
  if (reference.done && column.tokens.length > common) return common;
  if (column.done && reference.tokens.length > common) return common;
  return null;
}
