/**
 * The agreement check's prompts, fixed and drawn from the bench corpus (src/bench/corpus.ts): plain text
 * (one to three consecutive sentences, continued as a completion) and chat (a user asking about a sentence,
 * through the model's chat template). Same list every run; `count` takes the first n, alternating kinds.
 */
import { CORPUS } from '../../src/bench/corpus.ts';

export type AgreementPrompt =
  | { id: string; kind: 'text'; text: string }
  | { id: string; kind: 'chat'; messages: { role: 'user'; content: string }[] };

const ASKS = [
  'Summarize this in one sentence:',
  'Continue this story for a few sentences:',
  'What is the main idea here?',
  'Rewrite this more simply:',
];

function sentences(): string[] {
  return CORPUS.split(/(?<=[.!?])\s+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function agreementPrompts(count: number): AgreementPrompt[] {
  const all = sentences();
  const out: AgreementPrompt[] = [];
  for (let i = 0; out.length < count; i++) {
    const start = (i * 7) % all.length;
    const span = all.slice(start, start + 1 + (i % 3)).join(' ');
    if (i % 2 === 0) out.push({ id: `text-${i}`, kind: 'text', text: span });
    else
      out.push({
        id: `chat-${i}`,
        kind: 'chat',
        messages: [{ role: 'user', content: `${ASKS[(i >> 1) % ASKS.length]} ${span}` }],
      });
  }
  return out;
}
