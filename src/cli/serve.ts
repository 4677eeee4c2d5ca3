/** `loraplex serve`: the OpenAI-compatible server over the engine worker (no --model: the built-in demo). */
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { ensureDemo } from '../demo/demo-model.ts';
import { AsyncEngine } from '../engine/async-engine.ts';
import type { KernelBackend } from '../kernels/index.ts';
import type { WeightDType } from '../kernels/types.ts';
import { createServeLog } from '../observability/log.ts';
import { buildApp, DEFAULT_MAX_BODY_BYTES, type ServerContext } from '../server/app.ts';
import { Lifecycle } from '../server/lifecycle.ts';
import { PROMPT_BYTES_PER_TOKEN } from '../server/prompt-input.ts';
import { loadTextCodec } from '../tokenizer/text-codec.ts';
import { adapterArg, applyEnvAliases, engineOptions, envOption, intArg } from './options.ts';

interface ServeFlags {
  model?: string;
  servedModelName?: string;
  adapter: { name: string; dir: string }[];
  mergeAdapter?: string;
  loraDir?: string;
  loraRefreshInterval: number;
  enableLoraRuntimeUpdates?: boolean | string;
  allowedLoraRoot: string[];
  apiKey?: string;
  adminKey?: string;
  maxWaitingRequests: number;
  maxBodyBytes: number;
  maxPromptBytes?: number;
  drainTimeout: number;
  host: string;
  port: number;
  backend: KernelBackend;
  dtype?: WeightDType;
  maxLoras?: number;
  maxCpuLoras?: number;
  maxLoraRank: number;
  maxBatchTokens: number;
  maxRunningSeqs: number;
  kvCacheTokens: number;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const truthy = (v: boolean | string | undefined) =>
  v === true || (typeof v === 'string' && /^(1|true|yes|on)$/i.test(v));

export function serveCommand(): Command {
  applyEnvAliases();
  const cmd = new Command('serve')
    .description('serve the OpenAI API: `model` names the base or an adapter (no --model: the built-in demo)')
    .addOption(envOption('--model <dir>', 'Hugging Face model directory', 'MODEL'))
    .addOption(envOption('--served-model-name <name>', 'the name of the base model in the API', 'SERVED_MODEL_NAME'))
    .option('--adapter <name=dir>', 'a PEFT adapter directory, loaded at start-up; repeatable', adapterArg, [])
    .addOption(
      envOption(
        '--merge-adapter <dir>',
        'merge this PEFT adapter into the base weights (single-task: base speed); served under its folder name',
        'MERGE_ADAPTER',
      ),
    )
    .addOption(
      envOption(
        '--lora-dir <dir>',
        'adapter store: one sub-folder per adapter, loaded on first use (NIM_PEFT_SOURCE)',
        'LORA_DIR',
      ),
    )
    .addOption(
      envOption(
        '--lora-refresh-interval <seconds>',
        'rescan the store this often; 0 = never (NIM_PEFT_REFRESH_INTERVAL)',
        'LORA_REFRESH_INTERVAL',
      )
        .argParser(intArg(0))
        .default(0),
    )
    .addOption(
      envOption(
        '--enable-lora-runtime-updates',
        'enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter (VLLM_ALLOW_RUNTIME_LORA_UPDATING)',
        'ENABLE_LORA_RUNTIME_UPDATES',
      ),
    )
    .option(
      '--allowed-lora-root <dir>',
      'a directory lora_path may point into (default: --lora-dir); repeatable',
      collect,
      [],
    )
    .addOption(
      envOption('--api-key <key>', 'require this Bearer key on /v1/* (health and metrics stay open)', 'API_KEY'),
    )
    .addOption(envOption('--admin-key <key>', 'require this Bearer key on the adapter admin routes', 'ADMIN_KEY'))
    .addOption(
      envOption('--max-waiting-requests <n>', 'queued requests beyond this get 429', 'MAX_WAITING_REQUESTS')
        .argParser(intArg(1))
        .default(1024),
    )
    .addOption(
      envOption('--max-body-bytes <n>', 'request bodies beyond this get 413', 'MAX_BODY_BYTES')
        .argParser(intArg(1024))
        .default(DEFAULT_MAX_BODY_BYTES),
    )
    .addOption(
      envOption(
        '--max-prompt-bytes <n>',
        `prompts beyond this (UTF-8 bytes, checked before tokenizing) get 400 (default: ${PROMPT_BYTES_PER_TOKEN} × the context length)`,
        'MAX_PROMPT_BYTES',
      ).argParser(intArg(1)),
    )
    .addOption(
      envOption('--drain-timeout <seconds>', 'on SIGTERM, wait this long for running requests', 'DRAIN_TIMEOUT')
        .argParser(intArg(0))
        .default(30),
    )
    .addOption(envOption('--host <host>', 'address to listen on', 'HOST').default('127.0.0.1'))
    .addOption(envOption('--port <port>', 'port to listen on', 'PORT').argParser(intArg(0)).default(8000));
  for (const o of engineOptions()) cmd.addOption(o);
  return cmd.action(async (flags: ServeFlags) => {
    const log = createServeLog();
    let modelDir = flags.model;
    let adapters = flags.adapter;
    if (!modelDir) {
      const demo = await ensureDemo();
      modelDir = demo.modelDir;
      adapters = [...demo.adapters, ...adapters];
      log.info(
        `no --model: serving the built-in demo model and ${demo.adapters.length} demo adapters (random weights)`,
      );
    }
    const baseModel =
      flags.servedModelName ??
      (flags.mergeAdapter ? basename(resolve(flags.mergeAdapter)) : flags.model ? basename(modelDir) : 'loraplex-demo');
    const allowedRoots =
      flags.allowedLoraRoot.length > 0 ? flags.allowedLoraRoot : flags.loraDir ? [flags.loraDir] : [];
    const runtimeUpdates = truthy(flags.enableLoraRuntimeUpdates);
    if (runtimeUpdates && allowedRoots.length === 0) {
      throw new Error(
        '--enable-lora-runtime-updates needs --allowed-lora-root DIR (or --lora-dir): where lora_path may point',
      );
    }

    // Listen first: probes see a live server whose readiness (and every API route) is 503 until the model is up.
    const lifecycle = new Lifecycle(false);
    const ctx: ServerContext = {
      engine: null as unknown as AsyncEngine, // set below, before lifecycle.markReady(); routes 503 until then
      codec: await loadTextCodec(modelDir),
      baseModel,
      startedAt: Date.now(),
      apiKey: flags.apiKey,
      limits: { maxBodyBytes: flags.maxBodyBytes, maxPromptBytes: flags.maxPromptBytes },
      admin: runtimeUpdates
        ? { allowedRoots: allowedRoots.map((r) => resolve(r)), adminKey: flags.adminKey }
        : undefined,
      lifecycle,
    };
    if (runtimeUpdates && !flags.apiKey && !flags.adminKey) {
      log.warn(
        'WARNING: runtime adapter updates are enabled with no --admin-key or --api-key: anyone who can reach ' +
          'this port can load, replace and unload adapters (from inside --allowed-lora-root)',
      );
    }
    const app = buildApp(ctx);
    const address = await app.listen({ host: flags.host, port: flags.port });
    log.info(`listening on ${address}; loading the model (ready: 503 until loaded)`, { model: modelDir });

    const engine = await AsyncEngine.start(
      {
        modelDir,
        adapters,
        loraDir: flags.loraDir,
        mergeAdapter: flags.mergeAdapter,
        backend: flags.backend,
        dtype: flags.dtype,
        maxLoras: flags.maxLoras,
        maxCpuLoras: flags.maxCpuLoras,
        maxLoraRank: flags.maxLoraRank,
        maxBatchTokens: flags.maxBatchTokens,
        maxRunningSeqs: flags.maxRunningSeqs,
        kvCacheTokens: flags.kvCacheTokens,
        maxWaitingRequests: flags.maxWaitingRequests,
        skipInvalidAdapters: true,
      },
      { loraRefreshSeconds: flags.loraDir ? flags.loraRefreshInterval : 0, onProgress: log.progress },
    );
    for (const r of engine.info.rejected) log.warn(`adapter '${r.name}' not served: ${r.message}`);
    ctx.engine = engine;
    lifecycle.markReady();
    log.info(`serving '${baseModel}' and ${engine.adapters.length} adapter(s) on ${address}`, {
      store: flags.loraDir ?? null,
      runtimeUpdates,
    });
    // SIGTERM: readiness turns 503, new requests get 503, running ones finish (up to --drain-timeout), exit 0.
    const stop = async (signal: string) => {
      log.info(`${signal}: draining ${lifecycle.inFlight} running request(s)`);
      await lifecycle.drain(flags.drainTimeout * 1000);
      await app.close();
      await engine.close();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
