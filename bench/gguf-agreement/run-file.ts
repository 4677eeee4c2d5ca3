/**
 * One GGUF file through both servers, one after the other: llama.cpp first (tokenize, greedy with its top-k at
 * every position), then loraplex (tokenize, the same positions teacher-forced on llama.cpp's tokens, its own
 * greedy text). Returns the comparison for the artifact.
 */
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  type LlamaGreedy,
  llamaGreedy,
  llamaTokenize,
  loraplexForced,
  loraplexGreedy,
  loraplexTokenize,
  servedModel,
} from './clients.ts';
import { firstDivergence, type LogitSummary, type PositionDiff, positionDiff, summarize } from './compare.ts';
import type { AgreementPrompt } from './prompts.ts';
import { startLlamaServer, startLoraplex } from './servers.ts';

export interface RunSettings {
  root: string;
  llamaBin: string;
  threads: number;
  kv: 'f32' | 'f16';
  tokens: number;
  topK: number;
  /** loraplex greedy requests in flight together (batched decode; rows are computed independently). */
  concurrency: number;
  logDir: string;
  port: number;
}

export interface Divergence {
  prompt: string;
  position: number;
  llamaMargin: number;
  loraplexMargin: number;
  /** |Δ logprob| of llama.cpp's pick there. */
  pickDelta: number | null;
}

export interface FileResult {
  label: string;
  file: string;
  bytes: number;
  prompts: number;
  tokens: number;
  tokenizerAgree: number;
  endOfPrompt: LogitSummary;
  greedyPath: LogitSummary;
  greedy: {
    identicalText: number;
    /** Teacher-forced: prompts where loraplex's argmax follows llama.cpp's tokens all the way. */
    noDivergence: number;
    meanCommonPrefix: number;
    meanLength: number;
    divergences: Divergence[];
  };
  /** Per prompt, both sides' top k at the end of the prompt as [id, logprob] pairs (for cross-file checks). */
  endOfPromptTop: { llama: [number, number][]; loraplex: [number, number][] }[];
  seconds: number;
}

async function pool<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

export async function runFile(
  label: string,
  file: string,
  prompts: AgreementPrompt[],
  s: RunSettings,
): Promise<FileResult> {
  const t0 = performance.now();
  const llama = await startLlamaServer({
    bin: s.llamaBin,
    model: file,
    port: s.port,
    threads: s.threads,
    kv: s.kv,
    context: 4096,
    logFile: join(s.logDir, `llama-server-${basename(file)}.log`),
  });
  const ids: number[][] = [];
  const ref: LlamaGreedy[] = [];
  try {
    for (const p of prompts) {
      const promptIds = await llamaTokenize(llama.url, p);
      ids.push(promptIds);
      ref.push(await llamaGreedy(llama.url, promptIds, s.tokens, s.topK));
    }
  } finally {
    await llama.stop();
  }
  const lp = await startLoraplex(s.root, file, s.port + 1, s.threads, join(s.logDir, `loraplex-${basename(file)}.log`));
  let ours: number[][];
  let forced: Awaited<ReturnType<typeof loraplexForced>>[];
  let texts: Awaited<ReturnType<typeof loraplexGreedy>>[];
  try {
    const model = await servedModel(lp.url);
    ours = await pool(prompts, s.concurrency, (p) => loraplexTokenize(lp.url, model, p));
    // Forced tokens: llama.cpp's greedy, and the end-of-generation token it stopped on (its top-1 there).
    const path = ref.map((r) =>
      r.top.length > r.tokens.length ? [...r.tokens, [...r.top[r.tokens.length].keys()][0]] : r.tokens,
    );
    forced = await pool(
      prompts.map((_, i) => i),
      s.concurrency,
      (i) => loraplexForced(lp.url, model, ids[i], path[i], s.topK),
    );
    texts = await pool(ids, s.concurrency, (promptIds) => loraplexGreedy(lp.url, model, promptIds, s.tokens));
  } finally {
    await lp.stop();
  }
  const diffs: PositionDiff[][] = ref.map((r, i) => r.top.map((top, j) => positionDiff(top, forced[i][j])));
  const divergences: Divergence[] = [];
  let prefix = 0;
  let length = 0;
  ref.forEach((r, i) => {
    const path = r.top.map((t) => [...t.keys()][0]);
    const at = firstDivergence(path, diffs[i]);
    prefix += at ?? path.length;
    length += path.length;
    if (at !== null) {
      const d = diffs[i][at];
      const pick = r.top[at].get(path[at]);
      const other = forced[i][at].get(path[at]);
      divergences.push({
        prompt: prompts[i].id,
        position: at,
        llamaMargin: d.margin,
        loraplexMargin: d.otherMargin,
        pickDelta: pick !== undefined && other !== undefined ? Math.abs(pick - other) : null,
      });
    }
  });
  return {
    label,
    file: basename(file),
    bytes: statSync(file).size,
    prompts: prompts.length,
    tokens: s.tokens,
    tokenizerAgree: ours.filter((o, i) => o.length === ids[i].length && o.every((t, j) => t === ids[i][j])).length,
    endOfPrompt: summarize(diffs.map((d) => d[0]).filter((d) => d !== undefined)),
    greedyPath: summarize(diffs.flat()),
    greedy: {
      identicalText: texts.filter((t, i) => t.text === ref[i].text).length,
      noDivergence: prompts.length - divergences.length,
      meanCommonPrefix: prefix / prompts.length,
      meanLength: length / prompts.length,
      divergences,
    },
    endOfPromptTop: ref.map((r, i) => ({ llama: [...(r.top[0] ?? [])], loraplex: [...(forced[i][0] ?? [])] })),
    seconds: (performance.now() - t0) / 1000,
  };
}
