/**
 * An accepted flag that nothing reads is a bug. Every option of every sub-command, enumerated from the commander
 * programs themselves (a new flag without an entry here fails), set to a non-default value: the built Config
 * field changes AND what consumes it changes (the engine's build options, the server's context, the engine
 * thread's settings, the native configuration, generate's requests and output, bench's options).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Command } from 'commander';
import type { ComparableRun } from '../../src/bench/compare.ts';
import type { MetricsSummary } from '../../src/bench/metrics.ts';
import { type BenchFlags, benchCommand, type CompareFlags, compareOutcome, toOptions } from '../../src/cli/bench.ts';
import { buildOptionsOf, engineStartOf, serverContextOf } from '../../src/cli/config-parts.ts';
import {
  type GenerateFlags,
  generateCommand,
  outputOf,
  planRequests,
  samplingDefaults,
} from '../../src/cli/generate.ts';
import { type ServeFlags, serveCommand } from '../../src/cli/serve.ts';
import { buildConfig } from '../../src/config/build-config.ts';
import type { Config } from '../../src/config/config.ts';
import type { ConfigFlags } from '../../src/config/flags.ts';
import { Lifecycle } from '../../src/server/lifecycle.ts';
import type { TextCodec } from '../../src/tokenizer/text-codec.ts';

const tiny = join(import.meta.dirname, '..', 'fixtures', 'tiny');
const MODEL = join(tiny, 'llama-tied', 'model');
const OTHER_MODEL = join(tiny, 'mistral', 'model');

/** A flag's non-default setting, and (where it only means something next to another flag) the baseline it needs. */
interface Case<V> {
  args: string[];
  base?: string[];
  /** The Config field (absent for flags of one sub-command that never reach the Config, e.g. generate's --prompt). */
  config?: (c: Config) => unknown;
  /** What the consumer is handed. */
  consumer: (view: V) => unknown;
}

/** Parses argv with the command's real options; the action only captures what commander hands it. */
async function parse(cmd: Command, argv: string[]): Promise<{ flags: Record<string, unknown>; args: string[] }> {
  let captured: { flags: Record<string, unknown>; args: string[] } | null = null;
  cmd.exitOverride();
  cmd.action((...a: unknown[]) => {
    const command = a.at(-1) as Command;
    captured = { flags: command.opts(), args: command.args };
  });
  await cmd.parseAsync(argv, { from: 'user' });
  assert.ok(captured, `${cmd.name()} ${argv.join(' ')}: the action did not run`);
  return captured;
}

/** Every option a command accepts, by its long name (help excluded: commander's own). */
function optionNames(cmd: Command): string[] {
  return cmd.options.map((o) => o.long ?? o.short ?? o.flags).filter((n) => n !== '--help');
}

/** Variables that would stand in for flags are cleared: each case sets exactly what it names. */
function clearOptionEnv(cmds: Command[]) {
  for (const cmd of cmds) for (const o of cmd.options) if (o.envVar) delete process.env[o.envVar];
}

let dir = '';
const codec: Omit<TextCodec, 'tokenizer'> = {
  encode: (text) => [...text].map((ch) => ch.charCodeAt(0) % 96),
  encodeChat: (messages) => [1, ...messages.flatMap((m) => [...String(m.content)].map((ch) => ch.charCodeAt(0) % 96))],
  decode: () => '',
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraplex-flags-'));
  await writeFile(join(dir, 'batch.jsonl'), '{"prompt_ids":[5,6,7]}\n{"prompt_ids":[8]}\n');
  clearOptionEnv([serveCommand(), generateCommand(), benchCommand()]);
});
after(() => rm(dir, { recursive: true, force: true }));

const noDemo = async () => {
  throw new Error('the demo is not built in this test: every case gives --model');
};

/** The engine's flags, shared by serve and generate: the Config field and the build options buildEngine gets. */
type Built = { config: Config; build: ReturnType<typeof buildOptionsOf> };
const ENGINE_CASES: Record<string, Case<Built>> = {
  '--model': { args: ['--model', OTHER_MODEL], config: (c) => c.model.dir, consumer: (v) => v.build.modelDir },
  '--adapter': { args: ['--adapter', 'a=/x'], config: (c) => c.adapters.static, consumer: (v) => v.build.adapters },
  '--backend': {
    args: ['--backend', 'reference'],
    config: (c) => c.native.backend,
    consumer: (v) => v.build.backend,
  },
  '--dtype': { args: ['--dtype', 'bf16'], config: (c) => c.precision.dtype, consumer: (v) => v.build.dtype },
  '--quantize': {
    args: ['--quantize', 'q8_0'],
    config: (c) => c.precision.quantize,
    consumer: (v) => v.build.quantize,
  },
  '--float-lm-head': {
    args: ['--float-lm-head'],
    config: (c) => c.precision.floatLmHead,
    consumer: (v) => v.build.floatLmHead,
  },
  '--lora-dtype': {
    args: ['--lora-dtype', 'f16'],
    config: (c) => c.precision.loraDtype,
    consumer: (v) => v.build.loraDtype,
  },
  '--kv-cache-dtype': {
    args: ['--kv-cache-dtype', 'bf16'],
    config: (c) => c.precision.kvCacheDtype,
    consumer: (v) => v.build.kvCacheDtype,
  },
  '--max-model-len': {
    args: ['--max-model-len', '64'],
    config: (c) => c.model.maxModelLen,
    consumer: (v) => v.build.maxModelLen,
  },
  '--max-loras': { args: ['--max-loras', '3'], config: (c) => c.adapters.maxLoras, consumer: (v) => v.build.maxLoras },
  '--max-cpu-loras': {
    args: ['--max-cpu-loras', '5'],
    config: (c) => c.adapters.maxCpuLoras,
    consumer: (v) => v.build.maxCpuLoras,
  },
  '--max-cpu-lora-bytes': {
    args: ['--max-cpu-lora-bytes', '2GiB'],
    config: (c) => c.adapters.maxCpuLoraBytes,
    consumer: (v) => v.build.maxCpuLoraBytes,
  },
  '--max-lora-rank': {
    args: ['--max-lora-rank', '8'],
    config: (c) => c.adapters.maxLoraRank,
    consumer: (v) => v.build.maxLoraRank,
  },
  '--max-batch-tokens': {
    args: ['--max-batch-tokens', '64'],
    config: (c) => c.limits.maxBatchTokens,
    consumer: (v) => v.build.maxBatchTokens,
  },
  '--max-running-seqs': {
    args: ['--max-running-seqs', '3'],
    config: (c) => c.limits.maxRunningSeqs,
    consumer: (v) => v.build.maxRunningSeqs,
  },
  '--step-time-target-ms': {
    args: ['--step-time-target-ms', '40'],
    config: (c) => c.limits.stepTimeTargetMs,
    consumer: (v) => v.build.stepTimeTargetMs,
  },
  '--kv-cache-tokens': {
    args: ['--kv-cache-tokens', '1024'],
    config: (c) => c.limits.kvCacheTokens,
    consumer: (v) => v.build.kvCacheTokens,
  },
  '--threads': { args: ['--threads', '1'], config: (c) => c.native.threads, consumer: (v) => v.build.native?.threads },
  '--isa': { args: ['--isa', 'scalar'], config: (c) => c.native.isa, consumer: (v) => v.build.native?.isa },
  '--bf16-dot': { args: ['--bf16-dot'], config: (c) => c.native.bf16Dot, consumer: (v) => v.build.native?.bf16Dot },
};

type ServeView = Built & {
  warnings: string[];
  start: ReturnType<typeof engineStartOf>[1];
  ctx: Omit<ReturnType<typeof serverContextOf>, 'engine' | 'codec' | 'lifecycle' | 'startedAt'>;
};

const SERVE_CASES: Record<string, Case<ServeView>> = {
  ...ENGINE_CASES,
  '--served-model-name': {
    args: ['--served-model-name', 'mine'],
    config: (c) => c.model.servedModelName,
    consumer: (v) => v.ctx.baseModel,
  },
  '--merge-adapter': {
    args: ['--merge-adapter', '/adapters/sql'],
    config: (c) => c.model.mergeAdapter,
    consumer: (v) => [v.build.mergeAdapter, v.ctx.baseModel],
  },
  '--lora-dir': { args: ['--lora-dir', '/store'], config: (c) => c.adapters.loraDir, consumer: (v) => v.build.loraDir },
  '--lora-refresh-interval': {
    base: ['--lora-dir', '/store'],
    args: ['--lora-refresh-interval', '30'],
    config: (c) => c.adapters.refreshIntervalSeconds,
    consumer: (v) => v.start.loraRefreshSeconds,
  },
  '--enable-lora-runtime-updates': {
    base: ['--allowed-lora-root', '/roots/a', '--admin-key', 'k'],
    args: ['--enable-lora-runtime-updates'],
    config: (c) => c.adapters.runtimeUpdates,
    consumer: (v) => v.ctx.admin,
  },
  '--allowed-lora-root': {
    base: ['--enable-lora-runtime-updates', '--lora-dir', '/store', '--admin-key', 'k'],
    args: ['--allowed-lora-root', '/roots/b'],
    config: (c) => c.adapters.allowedRoots,
    consumer: (v) => v.ctx.admin?.allowedRoots,
  },
  '--api-key': { args: ['--api-key', 'k'], config: (c) => c.security.apiKey, consumer: (v) => v.ctx.apiKey },
  '--admin-key': {
    base: ['--enable-lora-runtime-updates', '--lora-dir', '/store'],
    args: ['--admin-key', 'k'],
    config: (c) => c.security.adminKey,
    consumer: (v) => [v.ctx.admin?.adminKey, v.warnings],
  },
  '--max-waiting-requests': {
    args: ['--max-waiting-requests', '7'],
    config: (c) => c.limits.maxWaitingRequests,
    consumer: (v) => v.build.maxWaitingRequests,
  },
  '--max-body-bytes': {
    args: ['--max-body-bytes', '4096'],
    config: (c) => c.server.maxBodyBytes,
    consumer: (v) => v.ctx.limits?.maxBodyBytes,
  },
  '--max-prompt-bytes': {
    args: ['--max-prompt-bytes', '100'],
    config: (c) => c.server.maxPromptBytes,
    consumer: (v) => v.ctx.limits?.maxPromptBytes,
  },
  '--engine-stall-timeout': {
    args: ['--engine-stall-timeout', '300'],
    config: (c) => c.server.engineStallTimeoutSeconds,
    consumer: (v) => v.start.stallTimeoutSeconds,
  },
  '--adapter-load-timeout': {
    args: ['--adapter-load-timeout', '5'],
    config: (c) => c.adapters.loadTimeoutSeconds,
    consumer: (v) => v.build.adapterLoadTimeout,
  },
  // Test plumbing: kept out of the Config, handed to the engine thread with it.
  '--inject-fault': { args: ['--inject-fault', 'base'], consumer: (v) => v.build.faults },
  // serve's action reads these three straight from config.server (listen, SIGTERM); the Config is their consumer.
  '--drain-timeout': {
    args: ['--drain-timeout', '5'],
    config: (c) => c.server.drainTimeoutSeconds,
    consumer: (v) => v.config.server,
  },
  '--host': { args: ['--host', '0.0.0.0'], config: (c) => c.server.host, consumer: (v) => v.config.server },
  '--port': { args: ['--port', '9'], config: (c) => c.server.port, consumer: (v) => v.config.server },
  '--no-ui': { args: ['--no-ui'], config: (c) => c.server.ui, consumer: (v) => v.ctx.ui },
  '--allowed-origins': {
    args: ['--allowed-origins', 'https://a.example,https://b.example:8443'],
    config: (c) => c.server.allowedOrigins,
    consumer: (v) => v.ctx.allowedOrigins,
  },
};

async function serveView(argv: string[]): Promise<ServeView> {
  const { flags } = await parse(serveCommand(), ['--model', MODEL, ...argv]);
  const { config, warnings } = await buildConfig(flags as ConfigFlags, {}, { ensureDemo: noDemo });
  const [build, start] = engineStartOf(config, { faults: (flags as ServeFlags).injectFault });
  const {
    engine: _e,
    codec: _c,
    lifecycle: _l,
    startedAt: _s,
    ...ctx
  } = serverContextOf(config, codec as TextCodec, new Lifecycle(false));
  return { config, build, warnings, start, ctx };
}

type GenerateView = Built & {
  plan: Awaited<ReturnType<typeof planRequests>>;
  sampling: ReturnType<typeof samplingDefaults>;
  output: ReturnType<typeof outputOf>;
};

const params = (v: GenerateView) => v.plan[0].req.params;
const GENERATE_CASES: Record<string, Case<GenerateView>> = {
  ...ENGINE_CASES,
  '--use': { base: ['--adapter', 'a=/x'], args: ['--use', 'a'], consumer: (v) => v.plan.map((r) => r.req.adapter) },
  '--prompt': { args: ['--prompt', 'hello'], consumer: (v) => v.plan[0].req.promptIds },
  '--chat': { args: ['--chat'], consumer: (v) => v.plan[0].req.promptIds },
  '--max-tokens': { args: ['--max-tokens', '5'], consumer: (v) => params(v)?.maxTokens },
  '--min-tokens': { args: ['--min-tokens', '2'], consumer: (v) => params(v)?.minTokens },
  '--temperature': { args: ['--temperature', '0.5'], consumer: (v) => params(v)?.temperature },
  '--top-p': { args: ['--top-p', '0.5'], consumer: (v) => params(v)?.topP },
  '--top-k': { args: ['--top-k', '3'], consumer: (v) => params(v)?.topK },
  '--seed': { args: ['--seed', '4'], consumer: (v) => params(v)?.seed },
  '--ignore-eos': { args: ['--ignore-eos'], consumer: (v) => params(v)?.ignoreEos },
  '--batch': { args: ['--batch', '<dir>/batch.jsonl'], consumer: (v) => v.plan.map((r) => r.req.promptIds) },
  '--output': { args: ['--output', '<dir>/out.jsonl'], consumer: (v) => v.output },
  '--json': { args: ['--json'], consumer: (v) => v.output },
};

async function generateView(argv: string[]): Promise<GenerateView> {
  const parsed = await parse(generateCommand(), ['--model', MODEL, ...argv.map((a) => a.replace('<dir>', dir))]);
  const flags = parsed.flags as unknown as GenerateFlags;
  const { config } = await buildConfig(flags, {}, { ensureDemo: noDemo });
  const names = config.adapters.static.map((a) => a.name);
  const plan = await planRequests(flags, codec, names, config.model.demo);
  return { config, build: buildOptionsOf(config), plan, sampling: samplingDefaults(flags), output: outputOf(flags) };
}

const BENCH_CASES: Record<string, Case<ReturnType<typeof toOptions>>> = {
  '--url': { args: ['--url', 'http://10.0.0.1:9'], consumer: (o) => o.url },
  '--model': { args: ['--model', 'a,b'], consumer: (o) => o.models },
  '--num-adapters': { args: ['--num-adapters', '2'], consumer: (o) => o.numAdapters },
  '--model-selection-strategy': {
    args: ['--model-selection-strategy', 'zipf'],
    consumer: (o) => o.modelSelectionStrategy,
  },
  '--zipf-alpha': { args: ['--zipf-alpha', '2'], consumer: (o) => o.zipfAlpha },
  '--endpoint-type': { args: ['--endpoint-type', 'completions'], consumer: (o) => o.endpointType },
  '--endpoint': { args: ['--endpoint', '/v2/x'], consumer: (o) => o.endpointPath },
  '--streaming': { base: ['--no-streaming'], args: ['--streaming'], consumer: (o) => o.streaming },
  '--no-streaming': { args: ['--no-streaming'], consumer: (o) => o.streaming },
  '--concurrency': { args: ['--concurrency', '1,2'], consumer: (o) => o.concurrency },
  '--request-rate': { args: ['--request-rate', '2'], consumer: (o) => o.requestRate },
  '--arrival-pattern': { args: ['--arrival-pattern', 'constant'], consumer: (o) => o.arrivalPattern },
  '--request-count': { args: ['--request-count', '5'], consumer: (o) => o.requestCount },
  '--duration': { args: ['--duration', '3'], consumer: (o) => o.durationSeconds },
  '--benchmark-grace-period': { args: ['--benchmark-grace-period', '9'], consumer: (o) => o.gracePeriodSeconds },
  '--warmup-request-count': { args: ['--warmup-request-count', '3'], consumer: (o) => o.warmupRequestCount },
  '--input-tokens': { args: ['--input-tokens', '17'], consumer: (o) => o.inputTokens },
  '--input-tokens-stddev': { args: ['--input-tokens-stddev', '2'], consumer: (o) => o.inputTokens },
  '--output-tokens': { args: ['--output-tokens', '9'], consumer: (o) => o.outputTokens },
  '--output-tokens-stddev': { args: ['--output-tokens-stddev', '2'], consumer: (o) => o.outputTokens },
  '--no-fix-output-length': { args: ['--no-fix-output-length'], consumer: (o) => o.fixOutputLength },
  '--use-server-token-count': { args: ['--use-server-token-count'], consumer: (o) => o.useServerTokenCount },
  '--num-dataset-entries': { args: ['--num-dataset-entries', '7'], consumer: (o) => o.numDatasetEntries },
  '--input-file': { args: ['--input-file', '/in.jsonl'], consumer: (o) => o.inputFile },
  '--tokenizer': { args: ['--tokenizer', '/tok'], consumer: (o) => o.tokenizerDir },
  '--api-key': { args: ['--api-key', 'k'], consumer: (o) => o.apiKey },
  '--extra-inputs': { args: ['--extra-inputs', 'a:1'], consumer: (o) => o.extraInputs },
  '--goodput': { args: ['--goodput', 'time_to_first_token:200'], consumer: (o) => o.goodput },
  '--seed': { args: ['--seed', '9'], consumer: (o) => o.seed },
  '--artifact-dir': { args: ['--artifact-dir', '/art'], consumer: (o) => o.artifactDir },
  '--request-timeout-seconds': { args: ['--request-timeout-seconds', '9'], consumer: (o) => o.requestTimeoutSeconds },
  '--progress': { args: ['--progress', 'lines'], consumer: (o) => o.progress },
};

const benchView = async (argv: string[]) => {
  // The bench action itself, not compare's (checked on its own below).
  return toOptions((await parse(benchCommand(), argv)).flags as unknown as BenchFlags);
};

const run = (label: string, requests: number): ComparableRun => ({
  source: label,
  tool: 'test',
  points: [{ label: 'c1', overall: { request_count: requests, stats: {} } as unknown as MetricsSummary }],
});
const COMPARE_CASES: Record<string, Case<ReturnType<typeof compareOutcome>>> = {
  '--tolerance': { args: ['--tolerance', '50'], consumer: (o) => o.report },
  '--tail-tolerance': { args: ['--tail-tolerance', '15'], consumer: (o) => o.tolerance },
  '--fail-over-tolerance': { args: ['--fail-over-tolerance'], consumer: (o) => o.failures },
};
const compareView = async (argv: string[]) => {
  const compare = benchCommand().commands.find((c) => c.name() === 'compare') as Command;
  const { flags } = await parse(compare, ['a.json', 'b.json', ...argv]);
  return compareOutcome(run('a', 10), run('b', 12), flags as CompareFlags);
};

function checkCommand<V extends object>(
  name: string,
  command: () => Command,
  cases: Record<string, Case<V>>,
  view: (argv: string[]) => Promise<V>,
) {
  describe(`${name}: every flag reaches what reads it`, () => {
    test('every option has a case, and every case is an option', () => {
      const options = optionNames(command());
      assert.deepEqual(
        options.filter((o) => !(o in cases)),
        [],
        'options with no case here: add one (and make sure something reads the flag)',
      );
      assert.deepEqual(
        Object.keys(cases).filter((c) => !options.includes(c)),
        [],
        'cases for options that no longer exist',
      );
    });
    for (const [flag, c] of Object.entries(cases)) {
      test(`${flag} ${c.args.slice(1).join(' ')}`.trim(), async () => {
        const base = await view(c.base ?? []);
        const changed = await view([...(c.base ?? []), ...c.args]);
        if (c.config) {
          const cfg = c.config as (x: Config) => unknown;
          const [a, b] = [base, changed].map((v) => cfg((v as unknown as { config: Config }).config));
          assert.notDeepEqual(b, a, `${flag}: the Config did not change`);
        }
        assert.notDeepEqual(c.consumer(changed), c.consumer(base), `${flag}: its consumer saw no change`);
      });
    }
  });
}

checkCommand('serve', serveCommand, SERVE_CASES, serveView);
checkCommand('generate', generateCommand, GENERATE_CASES, generateView);
checkCommand(
  'bench',
  () => {
    const bench = benchCommand();
    return bench;
  },
  BENCH_CASES,
  benchView,
);
checkCommand(
  'bench compare',
  () => benchCommand().commands.find((c) => c.name() === 'compare') as Command,
  COMPARE_CASES,
  compareView,
);
