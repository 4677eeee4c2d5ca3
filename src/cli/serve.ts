/** `loraplex serve`: the OpenAI-compatible server over the engine worker (no --model: the built-in demo). */
import { basename } from 'node:path';
import { Command } from 'commander';
import { LocalDirStore } from '../adapters/store/local-dir-store.ts';
import { ensureDemo } from '../demo/demo-model.ts';
import { AsyncEngine } from '../engine/async-engine.ts';
import type { KernelBackend } from '../kernels/index.ts';
import type { WeightDType } from '../kernels/types.ts';
import { buildApp, Lifecycle } from '../server/app.ts';
import { loadTextCodec } from '../tokenizer/text-codec.ts';
import { adapterArg, engineOptions, envOption, intArg } from './options.ts';

interface ServeFlags {
  model?: string;
  servedModelName?: string;
  adapter: { name: string; dir: string }[];
  loraDir?: string;
  apiKey?: string;
  drainTimeout: number;
  host: string;
  port: number;
  backend: KernelBackend;
  dtype?: WeightDType;
  maxLoras?: number;
  maxLoraRank: number;
  maxBatchTokens: number;
  maxRunningSeqs: number;
  kvCacheTokens: number;
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve the OpenAI API: `model` names the base or an adapter (no --model: the built-in demo)')
    .addOption(envOption('--model <dir>', 'Hugging Face model directory', 'MODEL'))
    .addOption(envOption('--served-model-name <name>', 'the name of the base model in the API', 'SERVED_MODEL_NAME'))
    .option('--adapter <name=dir>', 'a PEFT adapter directory, repeatable', adapterArg, [])
    .addOption(envOption('--lora-dir <dir>', 'adapter store: one sub-folder per adapter (NIM_PEFT_SOURCE)', 'LORA_DIR'))
    .addOption(
      envOption('--api-key <key>', 'require this Bearer key on /v1/* (health and metrics stay open)', 'API_KEY'),
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
    let modelDir = flags.model;
    let adapters = flags.adapter;
    const loraDir = flags.loraDir ?? process.env.NIM_PEFT_SOURCE;
    if (loraDir) {
      const stored = await (await LocalDirStore.open(loraDir)).list();
      const given = new Set(adapters.map((a) => a.name));
      adapters = [...adapters, ...stored.filter((a) => !given.has(a.name))];
    }
    if (!modelDir) {
      const demo = await ensureDemo();
      modelDir = demo.modelDir;
      adapters = [...demo.adapters, ...adapters];
      console.error(
        `loraplex: serving the built-in demo model and ${demo.adapters.length} demo adapters (random weights)`,
      );
    }
    const engine = await AsyncEngine.start({
      modelDir,
      adapters,
      backend: flags.backend,
      dtype: flags.dtype,
      maxLoras: flags.maxLoras,
      maxLoraRank: flags.maxLoraRank,
      maxBatchTokens: flags.maxBatchTokens,
      maxRunningSeqs: flags.maxRunningSeqs,
      kvCacheTokens: flags.kvCacheTokens,
      skipInvalidAdapters: true,
    });
    for (const r of engine.info.rejected) console.error(`loraplex: adapter '${r.name}' not served: ${r.message}`);
    const codec = await loadTextCodec(modelDir);
    const lifecycle = new Lifecycle();
    const baseModel = flags.servedModelName ?? (flags.model ? basename(modelDir) : 'loraplex-demo');
    const app = buildApp({
      engine,
      codec,
      baseModel,
      adapters: engine.info.adapters,
      startedAt: Date.now(),
      apiKey: flags.apiKey,
      lifecycle,
    });
    const address = await app.listen({ host: flags.host, port: flags.port });
    console.error(`loraplex: serving '${baseModel}' and ${engine.info.adapters.length} adapter(s) on ${address}`);
    // SIGTERM: readiness turns 503, new requests get 503, running ones finish (up to --drain-timeout), exit 0.
    const stop = async (signal: string) => {
      console.error(`loraplex: ${signal}: draining ${lifecycle.inFlight} running request(s)`);
      await lifecycle.drain(flags.drainTimeout * 1000);
      await app.close();
      await engine.close();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
