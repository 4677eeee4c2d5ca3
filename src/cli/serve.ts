/** `loraplex serve`: the OpenAI-compatible server over the engine worker (no --model: the built-in demo). */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { FastifyInstance } from 'fastify';
import { buildConfig } from '../config/build-config.ts';
import { DEFAULTS } from '../config/defaults.ts';
import type { ConfigFlags } from '../config/flags.ts';
import { ensureDemo } from '../demo/demo-model.ts';
import { AsyncEngine } from '../engine/async-engine.ts';
import { type EngineFaults, parseFault } from '../engine/faults.ts';
import type { LoraplexError } from '../observability/errors.ts';
import { createServeLog } from '../observability/log.ts';
import { buildApp } from '../server/app.ts';
import { Lifecycle } from '../server/lifecycle.ts';
import { PROMPT_BYTES_PER_TOKEN } from '../server/prompt-input.ts';
import { loadTextCodec } from '../tokenizer/text-codec.ts';
import { engineStartOf, serverContextOf } from './config-parts.ts';
import { nameConflicts, storeNames } from './name-conflicts.ts';
import { adapterArg, engineOptions, envOption, floatArg, intArg } from './options.ts';

/** After an engine fault, how long streams get to flush their final error event (and probes answer 503) before exit(1). */
const FAULT_GRACE_MS = 1000;

/** serve's flags: the Config's, and test plumbing that stays out of it. */
export interface ServeFlags extends ConfigFlags {
  injectFault?: EngineFaults;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** --allowed-origins a,b (repeatable): each an origin (scheme://host[:port]) or '*'. */
function originsArg(value: string, previous: string[] = []): string[] {
  const origins = value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) {
      throw new InvalidArgumentError(`'${o}' is not an origin (scheme://host[:port], no path) or '*'`);
    }
  }
  return [...previous, ...origins];
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve the OpenAI API: `model` names the base or an adapter (no --model: the built-in demo)')
    .addOption(envOption('--model <dir>', 'Hugging Face model directory', 'MODEL'))
    .addOption(
      envOption(
        '--served-model-name <name>',
        "the base model's name in the API, the `model` clients send (default: the --model folder's name); adapters may not take it",
        'SERVED_MODEL_NAME',
      ),
    )
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
        .default(DEFAULTS.adapters.refreshIntervalSeconds),
    )
    .addOption(
      envOption(
        '--enable-lora-runtime-updates',
        'enable POST /v1/load_lora_adapter, /v1/unload_lora_adapter and /v1/pin_lora_adapter (VLLM_ALLOW_RUNTIME_LORA_UPDATING)',
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
        .default(DEFAULTS.limits.maxWaitingRequests),
    )
    .addOption(
      envOption('--max-body-bytes <n>', 'request bodies beyond this get 413', 'MAX_BODY_BYTES')
        .argParser(intArg(1024))
        .default(DEFAULTS.server.maxBodyBytes),
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
        .default(DEFAULTS.server.drainTimeoutSeconds),
    )
    .addOption(
      envOption(
        '--engine-stall-timeout <seconds>',
        'requests waiting this long with no engine step mean the engine is stuck: fail them, exit 1 (0 = never)',
        'ENGINE_STALL_TIMEOUT',
      )
        .argParser(floatArg(0))
        .default(DEFAULTS.server.engineStallTimeoutSeconds),
    )
    .addOption(
      new Option('--inject-fault <spec>', 'test plumbing: adapter:NAME, base, exit, hang or hang-load')
        .argParser(parseFault)
        .hideHelp(),
    )
    .addOption(
      envOption('--adapter-load-timeout <seconds>', 'seconds one adapter load may take', 'ADAPTER_LOAD_TIMEOUT')
        .argParser(floatArg(0.001, 3600))
        .default(DEFAULTS.adapters.loadTimeoutSeconds),
    )
    .addOption(envOption('--no-ui', 'do not serve the web dashboard at /', 'NO_UI'))
    .addOption(
      envOption(
        '--allowed-origins <origins>',
        "CORS: comma-separated origins browsers may call the API from, or '*' (default: none, no CORS headers)",
        'ALLOWED_ORIGINS',
      ).argParser(originsArg),
    )
    .addOption(envOption('--host <host>', 'address to listen on', 'HOST').default(DEFAULTS.server.host))
    .addOption(
      envOption('--port <port>', 'port to listen on', 'PORT').argParser(intArg(0)).default(DEFAULTS.server.port),
    );
  for (const o of engineOptions()) cmd.addOption(o);
  return cmd.action(async (flags: ServeFlags) => {
    const log = createServeLog();
    const { config, warnings } = await buildConfig(flags, process.env, { ensureDemo });
    const { drainTimeoutSeconds } = config.server;
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
      setTimeout(() => process.exit(0), drainTimeoutSeconds * 1000 + 1800);
      if (!lifecycle.ready) {
        log.info(`${signal} while loading: stopping the engine thread`);
        loading.abort(new Error(`${signal} while loading`));
      } else if (!lifecycle.fault) {
        log.info(`${signal}: draining ${lifecycle.inFlight} running request(s)`);
        await lifecycle.drain(drainTimeoutSeconds * 1000);
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

    if (config.model.demo) {
      const demoAdapters = config.adapters.static.length - (flags.adapter?.length ?? 0);
      log.info(`no --model: serving the built-in demo model and ${demoAdapters} demo adapters (random weights)`);
    }
    for (const w of warnings) log.warn(w);
    const names = nameConflicts(
      config.model.servedModelName,
      config.adapters.static.map((a) => a.name),
      await storeNames(config.adapters.loraDir),
    );
    if (names.error) throw new Error(names.error);
    for (const w of names.warnings) log.warn(w);

    // Listen first: probes see a live server whose readiness (and every API route) is 503 until the model is up.
    const ctx = serverContextOf(config, await loadTextCodec(config.model.dir), lifecycle);
    ctx.requestLog = log;
    app = buildApp(ctx);
    const address = await app.listen({ host: config.server.host, port: config.server.port });
    log.info(`listening on ${address}; loading the model (ready: 503 until loaded)`, {
      model: config.model.dir,
      maxModelLen: config.model.maxModelLen,
    });

    try {
      engine = await AsyncEngine.start(
        ...engineStartOf(config, { onProgress: log.progress, signal: loading.signal, faults: flags.injectFault }),
      );
    } catch (e) {
      if (loading.signal.aborted) return; // SIGTERM while loading: stop() exits
      throw e;
    }
    for (const r of engine.info.rejected) log.warn(`adapter '${r.name}' not served: ${r.message}`);
    if (engine.info.native) log.info('native kernels configured', { ...engine.info.native });
    engine.onFault = onFault;
    if (engine.fault) onFault(engine.fault);
    ctx.engine = engine;
    lifecycle.markReady();
    log.info(`serving '${config.model.servedModelName}' and ${engine.adapters.length} adapter(s) on ${address}`, {
      store: config.adapters.loraDir,
      runtimeUpdates: config.adapters.runtimeUpdates,
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
