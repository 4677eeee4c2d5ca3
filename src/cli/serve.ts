/** `loraplex serve`: the OpenAI-compatible server over the engine worker (no --model: the built-in demo). */
import { basename, resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ensureDemo } from '../demo/demo-model.ts';
import { AsyncEngine, DEFAULT_STALL_TIMEOUT_SECONDS } from '../engine/async-engine.ts';
import { type EngineFaults, parseFault } from '../engine/faults.ts';
import type { KernelBackend } from '../kernels/index.ts';
import type { WeightDType } from '../kernels/types.ts';
import type { LoraplexError } from '../observability/errors.ts';
import { createServeLog } from '../observability/log.ts';
import { buildApp, DEFAULT_MAX_BODY_BYTES, type ServerContext } from '../server/app.ts';
import { Lifecycle } from '../server/lifecycle.ts';
import { PROMPT_BYTES_PER_TOKEN } from '../server/prompt-input.ts';
import { loadTextCodec } from '../tokenizer/text-codec.ts';
import { adapterArg, applyEnvAliases, engineOptions, envOption, floatArg, intArg, nativeConfig } from './options.ts';

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
  adapterLoadTimeout: number;
  threads?: number;
  isa?: string;
  bf16Dot?: boolean | string;
  engineStallTimeout: number;
  injectFault?: EngineFaults;
}

/** After an engine fault, how long streams get to flush their final error event (and probes answer 503) before exit(1). */
const FAULT_GRACE_MS = 1000;

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
    .addOption(
      envOption(
        '--engine-stall-timeout <seconds>',
        'requests waiting this long with no engine step mean the engine is stuck: fail them, exit 1 (0 = never)',
        'ENGINE_STALL_TIMEOUT',
      )
        .argParser(floatArg(0))
        .default(DEFAULT_STALL_TIMEOUT_SECONDS),
    )
    .addOption(
      new Option('--inject-fault <spec>', 'test plumbing: adapter:NAME, base, exit, hang or hang-load')
        .argParser(parseFault)
        .hideHelp(),
    )
    .addOption(envOption('--host <host>', 'address to listen on', 'HOST').default('127.0.0.1'))
    .addOption(envOption('--port <port>', 'port to listen on', 'PORT').argParser(intArg(0)).default(8000));
  for (const o of engineOptions()) cmd.addOption(o);
  return cmd.action(async (flags: ServeFlags) => {
    const log = createServeLog();
    const lifecycle = new Lifecycle(false);
    const loading = new AbortController();
    let app: FastifyInstance | null = null;
    let engine: AsyncEngine | null = null;
    let stopping = false; // SIGTERM / SIGINT: exit 0
    let faulted = false; // the engine failed: exit 1, unless a signal ends the process first

    // SIGTERM at any moment (loading, serving, after a fault) ends the process with 0 within the drain timeout
    // and a little more: readiness turns 503, new requests get 503, running ones finish until the deadline.
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      setTimeout(() => process.exit(0), flags.drainTimeout * 1000 + 1800);
      if (!lifecycle.ready) {
        log.info(`${signal} while loading: stopping the engine thread`);
        loading.abort(new Error(`${signal} while loading`));
      } else if (!lifecycle.fault) {
        log.info(`${signal}: draining ${lifecycle.inFlight} running request(s)`);
        await lifecycle.drain(flags.drainTimeout * 1000);
      }
      await closeServer(app);
      await engine?.close();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));

    // The engine failed: everything pending has its ENGINE_FAILED; probes say so; exit 1 for a supervisor.
    const onFault = (error: LoraplexError) => {
      log.error(`engine failed: ${error.message}`, { code: error.code });
      lifecycle.markFaulted(error);
      if (stopping || faulted) return;
      faulted = true;
      // The failed requests already have their error; the grace lets streams flush it and probes see 503.
      setTimeout(() => {
        setTimeout(() => process.exit(1), 1000);
        void closeServer(app).then(() => process.exit(1));
      }, FAULT_GRACE_MS);
    };

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
    app = buildApp(ctx);
    const address = await app.listen({ host: flags.host, port: flags.port });
    log.info(`listening on ${address}; loading the model (ready: 503 until loaded)`, { model: modelDir });

    try {
      engine = await AsyncEngine.start(
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
          adapterLoadTimeout: flags.adapterLoadTimeout,
          native: nativeConfig(flags),
          faults: flags.injectFault,
          skipInvalidAdapters: true,
        },
        {
          loraRefreshSeconds: flags.loraDir ? flags.loraRefreshInterval : 0,
          onProgress: log.progress,
          stallTimeoutSeconds: flags.engineStallTimeout,
          signal: loading.signal,
        },
      );
    } catch (e) {
      if (loading.signal.aborted) return; // SIGTERM while loading: stop() exits
      throw e;
    }
    for (const r of engine.info.rejected) log.warn(`adapter '${r.name}' not served: ${r.message}`);
    if (engine.info.native) log.info('native kernels configured', { ...engine.info.native });
    if (flags.engineStallTimeout > 0 && flags.engineStallTimeout <= flags.adapterLoadTimeout) {
      log.warn(
        `--engine-stall-timeout (${flags.engineStallTimeout} s) is not above --adapter-load-timeout ` +
          `(${flags.adapterLoadTimeout} s): requests waiting for a slow adapter load may be taken for a stalled engine`,
      );
    }
    engine.onFault = onFault;
    if (engine.fault) onFault(engine.fault);
    ctx.engine = engine;
    lifecycle.markReady();
    log.info(`serving '${baseModel}' and ${engine.adapters.length} adapter(s) on ${address}`, {
      store: flags.loraDir ?? null,
      runtimeUpdates,
    });
  });
}

/** Closes the listener and every connection still open (kept-alive, or a client that stopped reading). */
async function closeServer(app: FastifyInstance | null) {
  if (!app) return;
  const closed = app.close();
  app.server.closeAllConnections();
  await closed;
}
