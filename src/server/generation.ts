/**
 * Runs one validated, tokenized request on the engine and answers it, whole or streamed (SSE): one engine
 * sequence per choice (n per prompt; a completions request may hold several prompts, their choices indexed
 * prompt by prompt, as OpenAI numbers them), all submitted before the first await so they share engine steps.
 * A client that goes away has its sequences aborted, which frees their KV blocks and adapter pins in the
 * engine's next step; so does a stop string's match.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyReply } from 'fastify';
import type { AdapterPart } from '../adapters/compose.ts';
import type { TokenLogprobs } from '../engine/logprobs.ts';
import type { SamplingParams } from '../engine/sampling-params.ts';
import type { FinishReason } from '../engine/sequence.ts';
import { createError, isLoraplexError, type LoraplexError } from '../observability/errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';
import { ChoiceDecoder, type ChoiceDelta } from './choice-decoder.ts';
import type { Flavor } from './choice-format.ts';
import type { ServerContext } from './context.ts';
import { toLoraplexError } from './error-mapping.ts';
import { promptLogprobs, type TokenTexts } from './logprobs.ts';
import { choiceParams, maxTokensFor, type SamplingBody, type SamplingRequest } from './sampling-request.ts';

export interface Job {
  ctx: ServerContext;
  metrics: Metrics;
  names: TokenTexts;
  /** The request's tokenizer (its adapter's own, or the base's: ctx.codec when unset); names comes from it too. */
  codec?: TextCodec;
  /** Ids that end generation on top of the model's eos ids (an adapter tokenizer's eos), unless ignore_eos. */
  stopIds?: readonly number[];
  reply: FastifyReply;
  body: SamplingBody;
  request: SamplingRequest;
  adapter: string | null;
  /** The `lora` field's combination (lora-field.ts); the engine gets it instead of `adapter`. */
  lora?: AdapterPart[] | null;
  /** One or more prompts (completions' prompt lists); each gets request.n choices. */
  prompts: number[][];
  /** Completions' echo: each prompt's text, put before its choices' text. */
  echo?: string[];
  /** Completions' echo with logprobs: the prompt's tokens lead each choice's logprobs. */
  echoLogprobs?: boolean;
  /**
   * vLLM's prompt_logprobs, in the first chunk when streaming: on each choice (completions), or once at the top
   * level of the response (chat: one prompt).
   */
  showPromptLogprobs?: boolean;
  /**
   * Completions' best_of (whole responses only): this many candidates per prompt, of which the request.n with
   * the highest cumulative logprob are returned. The engine then computes logprobs even when not shown.
   */
  bestOf?: number;
  /** The logprobs were asked for by best_of only: not shown. */
  hideLogprobs?: boolean;
  flavor: Flavor;
}

/** One choice to generate: which prompt, and the engine parameters it runs with. */
interface ChoicePlan {
  promptIds: number[];
  params: Partial<SamplingParams>;
  /** Text the choice starts with (echo), before what it generates. */
  echo: string;
}

export async function serve(job: Job) {
  const { ctx } = job;
  const refusal = ctx.lifecycle.refusal();
  if (refusal) throw refusal;
  ctx.lifecycle.begin();
  try {
    return await respond(job);
  } finally {
    ctx.lifecycle.end();
  }
}

/** Checks each prompt against the vocabulary and the context, and plans the choices (prompt by prompt). */
function planChoices(job: Job): ChoicePlan[] {
  const vocab = job.ctx.engine.info.vocabSize;
  const maxLen = job.ctx.engine.info.maxModelLen;
  const param = job.prompts.length > 1 ? 'prompt' : job.flavor.object === 'text_completion' ? 'prompt' : 'messages';
  return job.prompts.flatMap((promptIds, p) => {
    const which = job.prompts.length > 1 ? `prompt[${p}]` : 'the prompt';
    if (promptIds.length === 0) throw createError('REQUEST_INVALID', { message: `${which} is empty` }, { param });
    if (promptIds.some((id) => id >= vocab)) {
      throw createError(
        'REQUEST_INVALID',
        { message: `token ids must be below the vocabulary size ${vocab}` },
        { param: 'prompt' },
      );
    }
    if (promptIds.length >= maxLen) {
      throw createError(
        'REQUEST_INVALID',
        {
          message: `${which} has ${promptIds.length} tokens; the context length is ${maxLen}, which leaves no room for output`,
        },
        { param },
      );
    }
    const maxTokens = maxTokensFor(job.request, promptIds.length, maxLen);
    if (promptIds.length + maxTokens > maxLen) {
      throw createError(
        'REQUEST_INVALID',
        {
          message: `${which} (${promptIds.length} tokens) + max_tokens (${maxTokens}) exceeds the context length ${maxLen}`,
        },
        { param: 'max_tokens' },
      );
    }
    return Array.from({ length: job.bestOf ?? job.request.n }, (_, c) => ({
      promptIds,
      params: withStopIds(choiceParams(job.request, c, maxTokens), job.stopIds ?? []),
      echo: job.echo?.[p] ?? '',
    }));
  });
}

/** An adapter tokenizer's eos ids end generation like the model's (not under ignore_eos, as EOS). */
function withStopIds(params: Partial<SamplingParams>, stopIds: readonly number[]): Partial<SamplingParams> {
  if (stopIds.length === 0 || params.ignoreEos) return params;
  return { ...params, stopTokenIds: [...(params.stopTokenIds ?? []), ...stopIds] };
}

/** The request's choices, each generating and decoding on its own; `onDelta` sees every delta. */
function runChoices(
  job: Job,
  plans: ChoicePlan[],
  signal: AbortSignal,
  onDelta: (index: number, delta: ChoiceDelta) => void,
) {
  const { ctx, request, adapter } = job;
  const trace = job.reply.request.trace;
  for (const promptIds of job.prompts) trace.generating(adapter, promptIds.length, request.n);
  const choices = plans.map(
    ({ promptIds }) =>
      new ChoiceDecoder((job.codec ?? ctx.codec).tokenizer, {
        promptIds,
        stop: request.stop,
        stopTokenIds: request.params.stopTokenIds ?? [],
        includeStopStr: request.includeStopStr,
        minTokens: request.params.minTokens ?? 0,
      }),
  );
  // All are submitted before the first await, so they join the same engine step.
  const runs = choices.map(async (choice, i) => {
    const { promptIds, params } = plans[i];
    let reason = 'abort';
    try {
      for await (const e of ctx.engine.generate(promptIds, job.lora ?? adapter, params, signal)) {
        trace.token(i);
        const delta = choice.push(e);
        if (delta.finishReason) reason = delta.finishReason;
        onDelta(i, delta);
        // Leaving the loop early (a stop string) aborts the engine sequence at once.
        if (choice.finished) break;
      }
    } finally {
      trace.choiceFinished(i, adapter, choice.completionTokens, reason);
    }
  });
  return { choices, done: Promise.all(runs) };
}

function usageOf(prompts: number[][], choices: ChoiceDecoder[]) {
  const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
  const completion = choices.reduce((n, c) => n + c.completionTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

/**
 * The request's own abort: the client going away, or the server ending every running request (the drain's
 * deadline, an engine fault: then `cancelReason` says why).
 */
function requestAbort(job: Job, choices: number) {
  const abort = new AbortController();
  setMaxListeners(choices + 4, abort.signal); // one listener per choice, plus ours
  const res = job.reply.raw;
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.on('close', onClose);
  const cancelled = job.ctx.lifecycle.cancelled;
  const onCancel = () => abort.abort(cancelled.reason);
  if (cancelled.aborted) onCancel();
  else cancelled.addEventListener('abort', onCancel, { once: true });
  return {
    signal: abort.signal,
    abort: () => abort.abort(),
    /** Why the server ended the request (null: it did not). */
    cancelReason: (): LoraplexError | null =>
      abort.signal.aborted && isLoraplexError(abort.signal.reason) ? abort.signal.reason : null,
    dispose() {
      res.off('close', onClose);
      cancelled.removeEventListener('abort', onCancel);
    },
  };
}

async function respond(job: Job) {
  const plans = planChoices(job);
  const abort = requestAbort(job, plans.length);
  try {
    return await (job.body.stream ? respondStreaming(job, plans, abort) : respondWhole(job, plans, abort));
  } finally {
    abort.dispose();
  }
}

type RequestAbort = ReturnType<typeof requestAbort>;

/**
 * A choice's first delta: with echo and logprobs, the prompt's tokens (the first without a logprob) come
 * before the generated ones; with prompt_logprobs, vLLM's field.
 */
function leading(job: Job, plan: ChoicePlan, d: ChoiceDelta) {
  const prompt = d.promptLogprobs ?? plan.promptIds.map(() => null);
  return {
    tokens: job.echoLogprobs ? [...plan.promptIds, ...d.tokens] : d.tokens,
    logprobs: job.echoLogprobs ? [...prompt, ...d.logprobs] : (d.logprobs as (TokenLogprobs | null)[]),
    extra: job.showPromptLogprobs ? { prompt_logprobs: promptLogprobs(job.names, plan.promptIds, prompt) } : {},
  };
}

/** best_of: per prompt, the request.n candidates with the highest cumulative logprob (ties: the earlier). */
function best<T extends { score: number }>(outputs: T[], job: Job): T[] {
  const per = job.bestOf ?? job.request.n;
  if (per === job.request.n) return outputs;
  return job.prompts.flatMap((_, p) =>
    outputs
      .slice(p * per, (p + 1) * per)
      .map((out, i) => ({ out, i }))
      .sort((a, b) => b.out.score - a.out.score || a.i - b.i)
      .slice(0, job.request.n)
      .map(({ out }) => out),
  );
}

/** Chat has one prompt: vLLM puts its prompt_logprobs beside the choices, not in them. */
const promptLogprobsOnResponse = (flavor: Flavor) => flavor.object === 'chat.completion';

const responseId = (flavor: Flavor) => `${flavor.object === 'text_completion' ? 'cmpl' : 'chatcmpl'}-${randomUUID()}`;

async function respondWhole(job: Job, plans: ChoicePlan[], abort: RequestAbort) {
  const { body, flavor, request, prompts } = job;
  const id = responseId(flavor);
  const created = Math.floor(Date.now() / 1000);
  const wantLogprobs = request.params.logprobs !== undefined && !job.hideLogprobs;
  const onResponse = promptLogprobsOnResponse(flavor);
  const outputs = plans.map((plan) => ({
    /** Σ logprob of the generated tokens (best_of's ranking). */
    score: 0,
    text: plan.echo,
    tokens: [] as number[],
    logprobs: [] as (TokenLogprobs | null)[],
    extra: {} as Record<string, unknown>,
    started: false,
    finish: null as FinishReason | null,
    stopReason: null as string | number | null,
  }));
  const { choices, done } = runChoices(job, plans, abort.signal, (i, d) => {
    const out = outputs[i];
    out.text += d.text;
    for (const lp of d.logprobs) out.score += lp.logprob;
    const lead = out.started ? { tokens: d.tokens, logprobs: d.logprobs, extra: null } : leading(job, plans[i], d);
    out.started = true;
    if (lead.extra) out.extra = lead.extra;
    out.tokens.push(...lead.tokens);
    out.logprobs.push(...lead.logprobs);
    if (d.finishReason) {
      out.finish = d.finishReason;
      out.stopReason = d.stopReason;
    }
  });
  try {
    await done;
  } catch (err) {
    abort.abort();
    throw err;
  }
  const cancelled = abort.cancelReason();
  if (cancelled) throw cancelled;
  return {
    id,
    object: flavor.object,
    created,
    model: body.model,
    choices: best(outputs, job).map((out, i) => ({
      ...flavor.format(i, job.names).choice(out.text, out.finish, out.stopReason),
      logprobs: wantLogprobs ? flavor.format(i, job.names).logprobs(out.tokens, out.logprobs) : null,
      ...(onResponse ? {} : out.extra),
    })),
    usage: usageOf(prompts, choices),
    ...(onResponse ? outputs[0].extra : {}),
  };
}

/**
 * SSE. The status and headers go out only once every choice is admitted — its first event came back from
 * the engine, so validation, the adapter (its load included), the waiting queue and the KV budget have all
 * said yes — so a refusal keeps its status (400/404/429/503, Retry-After). Events produced before then are
 * held and sent right after the headers. An error after the stream began ends it with an OpenAI-style error
 * event and `[DONE]`.
 */
async function respondStreaming(job: Job, plans: ChoicePlan[], abort: RequestAbort) {
  const { reply, body, flavor, request, prompts } = job;
  const id = responseId(flavor);
  const created = Math.floor(Date.now() / 1000);
  const formats = plans.map((_, i) => flavor.format(i, job.names));
  const wantLogprobs = request.params.logprobs !== undefined;
  const onResponse = promptLogprobsOnResponse(flavor);
  let promptShown = false;
  const res = reply.raw;
  const held: string[] = [];
  let open = false;
  const send = (payload: unknown) => {
    const event = `data: ${JSON.stringify(payload)}\n\n`;
    if (open) res.write(event);
    else held.push(event);
  };
  const chunk = (choices: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
    id,
    object: flavor.chunkObject,
    created,
    model: body.model,
    choices,
    ...extra,
  });
  const first = formats.map(() => true);
  let unadmitted = plans.length;
  let admitted!: () => void;
  const admission = new Promise<void>((resolve) => {
    admitted = resolve;
  });
  const { choices, done } = runChoices(job, plans, abort.signal, (i, d) => {
    if (first[i] && --unadmitted === 0) admitted();
    const lead = first[i] ? leading(job, plans[i], d) : { tokens: d.tokens, logprobs: d.logprobs, extra: {} };
    // With logprobs, every token's entry goes out at once, even when its text is still held back.
    const carriesLogprobs = wantLogprobs && lead.tokens.length > 0;
    if (!(d.text || d.finishReason || first[i] || carriesLogprobs)) return;
    const format = formats[i];
    const onChunk = onResponse && !promptShown ? lead.extra : {};
    promptShown = true;
    send(
      chunk(
        [
          {
            ...format.delta(first[i] ? plans[i].echo + d.text : d.text, d.finishReason, d.stopReason, first[i]),
            logprobs: carriesLogprobs ? format.logprobs(lead.tokens, lead.logprobs) : null,
            ...(onResponse ? {} : lead.extra),
          },
        ],
        onChunk,
      ),
    );
    first[i] = false;
  });
  // Before the headers: a refusal is thrown, and the error handler answers with its status.
  try {
    await Promise.race([admission, done]);
  } catch (err) {
    abort.abort();
    throw err;
  }
  const refused = abort.cancelReason();
  if (refused && unadmitted > 0) throw refused;
  reply.hijack();
  if (abort.signal.aborted && unadmitted > 0) {
    res.end(); // the client left before anything was sent
    return reply;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  open = true;
  for (const event of held.splice(0)) res.write(event);
  try {
    await done;
    const cancelled = abort.cancelReason();
    if (cancelled) throw cancelled;
    if (body.stream_options?.include_usage) send(chunk([], { usage: usageOf(prompts, choices) }));
  } catch (err) {
    abort.abort();
    send(toLoraplexError(err, { bodyLimit: 0 }).toOpenAIError());
  } finally {
    res.end('data: [DONE]\n\n');
  }
  return reply;
}
