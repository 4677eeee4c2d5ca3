/**
 * A real loraplex server on loopback (the demo model, its engine in the worker thread) with the official
 * `openai` client, plus the same model in an offline engine to compute expected outputs. Shared by the
 * server tests of stop strings, n and logprobs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { buildEngine } from '../../src/engine/build-engine.ts';
import type { SamplingParams } from '../../src/engine/sampling-params.ts';
import type { Sequence } from '../../src/engine/sequence.ts';
import { buildApp } from '../../src/server/app.ts';
import type { ServerContext } from '../../src/server/context.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import { loadTextCodec, type TextCodec } from '../../src/tokenizer/text-codec.ts';

export interface Loopback {
  client: OpenAI;
  address: string;
  engine: AsyncEngine;
  codec: TextCodec;
  /** The prompt run alone in the offline engine (greedy, ignoring EOS unless params say otherwise). */
  offline(prompt: string, params: Partial<SamplingParams>): Sequence;
  close(): Promise<void>;
}

export async function startLoopback(): Promise<Loopback> {
  const cache = await mkdtemp(join(tmpdir(), 'loraplex-loopback-'));
  const demo = await ensureDemo(cache);
  const build = { modelDir: demo.modelDir, adapters: demo.adapters, kvCacheTokens: 8192 };
  const engine = await AsyncEngine.start(build);
  const codec = await loadTextCodec(demo.modelDir);
  const app = testApp(engine, codec);
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'unused', maxRetries: 0 });
  const local = (await buildEngine(build)).engine;
  return {
    client,
    address,
    engine,
    codec,
    offline(prompt, params) {
      const [seq] = local.generate([
        { promptIds: codec.encode(prompt), adapter: null, params: { temperature: 0, ignoreEos: true, ...params } },
      ]);
      return seq;
    },
    async close() {
      await app.close();
      await engine.close();
      await rm(cache, { recursive: true, force: true });
    },
  };
}

/** The app over `engine` as the server tests use it: the base is 'base', ready now; `extra` adds or overrides. */
export function testApp(engine: AsyncEngine, codec: TextCodec, extra: Partial<ServerContext> = {}) {
  return buildApp({ engine, codec, baseModel: 'base', startedAt: Date.now(), lifecycle: new Lifecycle(), ...extra });
}

/** Reads an SSE stream from the openai client into its chunks. */
export async function chunksOf<T>(stream: unknown): Promise<T[]> {
  const chunks: T[] = [];
  for await (const chunk of stream as AsyncIterable<T>) chunks.push(chunk);
  return chunks;
}

/** The engine's last report says idle: nothing running or waiting, every KV block free. */
export function isIdle(engine: AsyncEngine): boolean {
  const s = engine.stats;
  return s !== null && s.running === 0 && s.waiting === 0 && s.kvBlocksUsed === 0;
}

/**
 * Resolves once the engine reports idle (on the worker's stats message that says so, not by polling); fails
 * if that has not happened within `withinMs` (a guard against a hang, never a wait).
 */
export async function engineIdle(engine: AsyncEngine, withinMs: number): Promise<void> {
  await deadline(
    engine.until(() => isIdle(engine)),
    withinMs,
    () => `the engine was still busy: ${JSON.stringify(engine.stats)}`,
  );
}

/** `promise`, or a failure naming what did not happen when `ms` pass first. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A completions call with fixed defaults (vLLM's extra fields allowed), each call overriding some of them. */
export function completer(client: () => OpenAI, defaults: Record<string, unknown>) {
  return (extra: Record<string, unknown> = {}) =>
    client().completions.create({ ...defaults, ...extra } as never) as unknown as Promise<OpenAI.Completion>;
}

/** A sample's value in Prometheus text: the first line of `name` (with any labels) that contains `label`. */
export function metricValue(text: string, name: string, label = ''): number {
  const line = text
    .split('\n')
    .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}
