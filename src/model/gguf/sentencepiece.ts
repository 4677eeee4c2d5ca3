/**
 * A SentencePiece BPE vocabulary as a GGUF file holds it (tokenizer.ggml.model "llama": pieces with scores,
 * byte pieces <0x00>…<0xFF>, no merges), as the parts of a tokenizer.json: the merges are rebuilt from the
 * scores as transformers does for such files (every split of a piece into two pieces of the vocabulary, best
 * score first), spaces become "▁" (Metaspace), and bytes with no piece fall back to the byte pieces.
 */

/** Merges implied by the pieces and their scores: higher-scoring results merge first. */
export function sentencePieceMerges(tokens: readonly string[], scores: readonly number[]): [string, string][] {
  // Maps keep a repeated token at its first position with its last value, as the Python dicts do.
  const ids = new Map<string, number>();
  const scoreOf = new Map<string, number>();
  tokens.forEach((t, i) => {
    ids.set(t, i);
    scoreOf.set(t, scores[i]);
  });
  const merges: { left: string; right: string; score: number; leftLen: number; rightLen: number }[] = [];
  for (const [piece, score] of scoreOf) {
    const chars = Array.from(piece);
    const local: (typeof merges)[number][] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join('');
      const right = chars.slice(i).join('');
      if (ids.has(left) && ids.has(right)) local.push({ left, right, score, leftLen: i, rightLen: chars.length - i });
    }
    local.sort((a, b) => ids.get(a.left)! - ids.get(b.left)! || ids.get(a.right)! - ids.get(b.right)!);
    merges.push(...local);
  }
  // Stable, descending by (score, left length, right length).
  merges.sort((a, b) => b.score - a.score || b.leftLen - a.leftLen || b.rightLen - a.rightLen);
  return merges.map((m) => [m.left, m.right]);
}

export function sentencePiecePreTokenizer(addSpacePrefix: boolean): Record<string, unknown> {
  return { type: 'Metaspace', replacement: '▁', prepend_scheme: addSpacePrefix ? 'first' : 'never', split: false };
}

export function sentencePieceDecoder(addSpacePrefix: boolean): Record<string, unknown> {
  return {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
    ],
  };
}
