/**
 * `loraplex generate`: offline generation. One prompt (through the base or one adapter, or — on the demo —
 * through the base and every adapter at once), or a JSONL batch of requests run together in mixed batches.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { buildConfig } from '../config/build-config.ts';
import type { ConfigFlags } from '../config/flags.ts';
import { ensureDemo } from '../demo/demo-model.ts';
import { buildEngine } from '../engine/build-engine.ts';
import type { GenerationRequest } from '../engine/llm-engine.ts';
import type { SamplingParams } from '../engine/sampling-params.ts';
import { loadTextCodec, type TextCodec } from '../tokenizer/text-codec.ts';
import { buildOptionsOf } from './config-parts.ts';
import { adapterArg, engineOptions, floatArg, intArg } from './options.ts';

/** generate's own flags; the engine's (and --model, --adapter) go into the Config. */
export interface GenerateFlags extends ConfigFlags {
  adapter: { name: string; dir: string }[];
  use?: string;
  prompt: string;
  chat: boolean;
  maxTokens: number;
  minTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  ignoreEos: boolean;
  batch?: string;
  output?: string;
  json: boolean;
}

/** One line of a --batch JSONL file. */
interface BatchLine {
  prompt?: string;
  prompt_ids?: number[];
  messages?: { role: string; content: string }[];
  adapter?: string | null;
  model?: string;
  max_tokens?: number;
  min_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  ignore_eos?: boolean;
}

export function generateCommand(): Command {
  const cmd = new Command('generate')
    .description('generate text offline from a model and LoRA adapters (no --model: the built-in demo)')
    .option('--model <dir>', 'Hugging Face model directory (config.json, safetensors, tokenizer.json)')
    .option('--adapter <name=dir>', 'a PEFT adapter directory, repeatable', adapterArg, [])
    .option('--use <name>', 'the adapter to generate with (default: the base model)')
    .option('--prompt <text>', 'the prompt', 'Once upon a time')
    .option('--chat', 'render the prompt as a user message with the chat template', false)
    .option('--max-tokens <n>', 'tokens to generate', intArg(1), 32)
    .option('--min-tokens <n>', 'tokens to generate before EOS may stop', intArg(0), 0)
    .option('--temperature <t>', '0 = greedy', floatArg(0), 0)
    .option('--top-p <p>', 'nucleus sampling', floatArg(Number.MIN_VALUE, 1), 1)
    .option('--top-k <k>', '0 = off', intArg(0), 0)
    .option('--seed <n>', 'sampling seed', intArg(0))
    .option('--ignore-eos', 'keep generating past EOS', false)
    .option('--batch <file>', 'JSONL requests {prompt|prompt_ids|messages, adapter, max_tokens, …} run together')
    .option('--output <file>', 'write JSONL results here instead of stdout')
    .option('--json', 'print JSONL results', false);
  for (const o of engineOptions()) cmd.addOption(o);
  return cmd.action(async (flags: GenerateFlags, command: Command) => {
    if (!flags.model) {
      // The demo's random weights repeat one token under greedy decoding; sample (seeded, reproducible)
      // unless the user chose otherwise.
      if (command.getOptionValueSource('temperature') === 'default') flags.temperature = 0.8;
      if (command.getOptionValueSource('seed') === undefined) flags.seed = 1;
    }
    await runGenerate(flags);
  });
}

async function runGenerate(flags: GenerateFlags) {
  const { config, warnings } = await buildConfig(flags, process.env, { ensureDemo });
  for (const w of warnings) console.error(`loraplex: ${w}`);
  const modelDir = config.model.dir;
  const adapters = config.adapters.static;
  const demo = config.model.demo;
  if (demo) {
    const demoAdapters = adapters.length - flags.adapter.length;
    console.error(`loraplex: using the built-in demo model (${modelDir}) and ${demoAdapters} demo adapters`);
  }
  const names = new Set(adapters.map((a) => a.name));
  if (flags.use && !names.has(flags.use)) {
    throw new Error(`--use ${flags.use}: no such adapter (given: ${[...names].join(', ') || 'none'})`);
  }
  const started = performance.now();
  const { engine } = await buildEngine(buildOptionsOf(config));
  const codec = await loadTextCodec(modelDir).catch((e: Error) => tokenIdsOnly(e.message));
  const loadMs = performance.now() - started;

  const requests = await planRequests(flags, codec, [...names], demo);
  const t0 = performance.now();
  const seqs = engine.generate(requests.map((r) => r.req));
  const seconds = (performance.now() - t0) / 1000;
  const generated = seqs.reduce((n, s) => n + s.outputIds.length, 0);

  const results = seqs.map((seq, i) => ({
    index: i,
    adapter: requests[i].req.adapter,
    prompt: requests[i].prompt,
    text: codec.decode(seq.outputIds),
    token_ids: seq.outputIds,
    finish_reason: seq.finishReason,
    prompt_tokens: seq.promptIds.length,
    completion_tokens: seq.outputIds.length,
  }));
  const output = outputOf(flags);
  if (output.format === 'jsonl') {
    const body = `${results.map((r) => JSON.stringify(r)).join('\n')}\n`;
    if (output.file) await writeFile(output.file, body);
    else process.stdout.write(body);
  } else {
    for (const [i, r] of results.entries()) console.log(textResult(requests[i], r));
  }
  console.error(
    `loraplex: ${seqs.length} sequence(s), ${generated} tokens in ${seconds.toFixed(2)} s ` +
      `(${(generated / seconds).toFixed(1)} tok/s); model and adapters loaded in ${(loadMs / 1000).toFixed(2)} s`,
  );
}

export interface PlannedRequest {
  label: string;
  prompt: string;
  /** Chat messages through the template: the answer is printed apart from the prompt, not as its continuation. */
  chat: boolean;
  req: GenerationRequest;
}

/**
 * One result as text: a completion continues its prompt; a chat shows the prompt and the answer apart.
 *
 *   ── base (12 tokens, stop)         ── base (12 tokens, stop)
 *   Once upon a time, there was…      > What is a pirate?
 *                                     A pirate is…
 */
export function textResult(
  request: Pick<PlannedRequest, 'label' | 'prompt' | 'chat'>,
  r: { text: string; completion_tokens: number; finish_reason: string | null },
): string {
  const head = `── ${request.label} (${r.completion_tokens} tokens, ${r.finish_reason})`;
  if (!request.chat) return `${head}\n${request.prompt}${r.text}\n`;
  const asked = request.prompt
    .split('\n')
    .map((line) => `> ${line}`)
    .join('\n');
  return `${head}\n${asked}\n${r.text}\n`;
}

/** The requests to run: each --batch line, else --prompt (--chat: as a user message) through --use or the base. */
export async function planRequests(
  flags: GenerateFlags,
  codec: Omit<TextCodec, 'tokenizer'>,
  adapters: string[],
  demo: boolean,
): Promise<PlannedRequest[]> {
  const defaults = samplingDefaults(flags);
  if (flags.batch) {
    const file = flags.batch;
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '');
    return lines.map((line, i) => batchRequest(line, i + 1, file, codec, defaults, new Set(adapters)));
  }
  const promptIds = flags.chat
    ? codec.encodeChat([{ role: 'user', content: flags.prompt }])
    : codec.encode(flags.prompt);
  // The demo shows the base and every adapter side by side.
  const targets: (string | null)[] = flags.use ? [flags.use] : demo ? [null, ...adapters] : [null];
  return targets.map((adapter) => ({
    label: adapter ?? 'base',
    prompt: flags.prompt,
    chat: flags.chat,
    req: { promptIds, adapter, params: defaults },
  }));
}

/** Where results go: JSONL (--json, or --output FILE) or text on stdout. */
export function outputOf(flags: Pick<GenerateFlags, 'json' | 'output'>): {
  format: 'jsonl' | 'text';
  file: string | null;
} {
  return { format: flags.json || flags.output ? 'jsonl' : 'text', file: flags.output ?? null };
}

/** The sampling flags: every request's parameters unless its --batch line sets its own. */
export function samplingDefaults(flags: GenerateFlags): Partial<SamplingParams> {
  return {
    maxTokens: flags.maxTokens,
    minTokens: flags.minTokens,
    temperature: flags.temperature,
    topP: flags.topP,
    topK: flags.topK,
    seed: flags.seed ?? null,
    ignoreEos: flags.ignoreEos,
  };
}

/** A model without tokenizer files still runs requests given as token ids. */
function tokenIdsOnly(why: string): Omit<TextCodec, 'tokenizer'> {
  const refuse = (): never => {
    throw new Error(`${why}\n(without a tokenizer, give requests as prompt_ids in a --batch file)`);
  };
  return { encode: refuse, encodeChat: refuse, decode: () => '' };
}

function batchRequest(
  line: string,
  lineNo: number,
  file: string,
  codec: Omit<TextCodec, 'tokenizer'>,
  defaults: Partial<SamplingParams>,
  adapters: Set<string>,
) {
  const where = `${file}:${lineNo}`;
  let b: BatchLine;
  try {
    b = JSON.parse(line);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const adapter = b.adapter ?? (b.model && adapters.has(b.model) ? b.model : null);
  if (adapter !== null && !adapters.has(adapter)) throw new Error(`${where}: unknown adapter '${adapter}'`);
  let promptIds: number[];
  let prompt: string;
  let chat = false;
  if (b.prompt_ids) {
    promptIds = b.prompt_ids;
    prompt = codec.decode(promptIds);
  } else if (b.messages) {
    promptIds = codec.encodeChat(b.messages);
    prompt = b.messages.map((m) => m.content).join('\n');
    chat = true;
  } else if (typeof b.prompt === 'string') {
    promptIds = codec.encode(b.prompt);
    prompt = b.prompt;
  } else {
    throw new Error(`${where}: give one of 'prompt', 'prompt_ids' or 'messages'`);
  }
  const params: Partial<SamplingParams> = { ...defaults };
  if (b.max_tokens !== undefined) params.maxTokens = b.max_tokens;
  if (b.min_tokens !== undefined) params.minTokens = b.min_tokens;
  if (b.temperature !== undefined) params.temperature = b.temperature;
  if (b.top_p !== undefined) params.topP = b.top_p;
  if (b.top_k !== undefined) params.topK = b.top_k;
  if (b.seed !== undefined) params.seed = b.seed;
  if (b.ignore_eos !== undefined) params.ignoreEos = b.ignore_eos;
  return { label: `${lineNo}:${adapter ?? 'base'}`, prompt, chat, req: { promptIds, adapter, params } };
}
