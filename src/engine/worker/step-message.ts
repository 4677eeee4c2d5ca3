/**
 * One engine step's outputs → the one `step` message the worker posts for it: a token entry per sequence
 * that produced one, a rejection per sequence that failed. Sequences the server no longer waits for
 * (aborted: no id) are left out.
 */
import { serializeError } from '../../observability/errors.ts';
import type { StepOutput } from '../llm-engine.ts';
import type { Sequence } from '../sequence.ts';
import type { FromWorker } from './protocol.ts';

export type StepMessage = Extract<FromWorker, { type: 'step' }>;

export function stepMessage(outputs: readonly StepOutput[], idOf: (seq: Sequence) => number | undefined): StepMessage {
  const message: StepMessage = { type: 'step', tokens: [], rejected: [] };
  for (const { seq, newToken, finished } of outputs) {
    const id = idOf(seq);
    if (id === undefined) continue;
    if (seq.error) {
      message.rejected.push({ id, error: serializeError(seq.error) });
    } else if (newToken !== null) {
      message.tokens.push({
        id,
        token: newToken,
        finishReason: finished ? seq.finishReason : null,
        promptTokens: seq.promptIds.length,
        logprobs: seq.params.logprobs === null ? undefined : seq.outputLogprobs.at(-1),
        ...(seq.promptLogprobs && seq.outputIds.length === 1 ? { promptLogprobs: seq.promptLogprobs } : {}),
      });
    }
  }
  return message;
}

/** The ids a step message ends: their sequences are done (finished or failed). */
export function endedIds(message: StepMessage): number[] {
  return [...message.rejected.map((r) => r.id), ...message.tokens.filter((t) => t.finishReason).map((t) => t.id)];
}
