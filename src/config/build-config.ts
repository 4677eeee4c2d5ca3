/**
 * The one builder: flags (with their LORAPLEX_… and NIM/vLLM variables) + the model's config.json → Config,
 * validated, with the warnings worth saying once at start-up.
 *
 *   const { config, warnings } = await buildConfig(flags, process.env, { ensureDemo });
 */
import { basename, resolve } from 'node:path';
import type { Isa } from '../kernels/native/addon.ts';
import type { AdapterSource, Config } from './config.ts';
import { DEFAULTS } from './defaults.ts';
import { cacheDirOf, type Env, truthy } from './env.ts';
import type { ConfigFlags } from './flags.ts';
import { readModelMaxLen, resolveMaxModelLen } from './max-model-len.ts';
import { checkModelDir } from './model-dir.ts';

export interface BuiltConfig {
  config: Config;
  warnings: string[];
}

export interface BuildConfigDeps {
  /** Writes (once) and returns the built-in demo model, for runs without --model (src/demo's ensureDemo). */
  ensureDemo: (cacheDir: string) => Promise<{ modelDir: string; adapters: AdapterSource[] }>;
}

export async function buildConfig(flags: ConfigFlags, env: Env, deps: BuildConfigDeps): Promise<BuiltConfig> {
  const warnings: string[] = [];
  const cacheDir = cacheDirOf(env);
  let dir = flags.model;
  let statics = flags.adapter ?? [];
  if (!dir) {
    const demo = await deps.ensureDemo(cacheDir);
    dir = demo.modelDir;
    statics = [...demo.adapters, ...statics];
  } else await checkModelDir(dir, dir);
  const servedModelName =
    flags.servedModelName ??
    (flags.mergeAdapter ? basename(resolve(flags.mergeAdapter)) : flags.model ? basename(dir) : 'loraplex-demo');

  const kvCacheTokens = flags.kvCacheTokens ?? DEFAULTS.limits.kvCacheTokens;
  const modelMax = await readModelMaxLen(dir);
  const context = resolveMaxModelLen({ modelMax, requested: flags.maxModelLen, kvCacheTokens });
  if (context.warning) warnings.push(context.warning);

  const loraDir = flags.loraDir ?? null;
  const givenRoots = flags.allowedLoraRoot ?? [];
  const roots = givenRoots.length > 0 ? givenRoots : loraDir ? [loraDir] : [];
  const runtimeUpdates = truthy(flags.enableLoraRuntimeUpdates);
  if (runtimeUpdates && roots.length === 0) {
    throw new Error(
      '--enable-lora-runtime-updates needs --allowed-lora-root DIR (or --lora-dir): where lora_path may point',
    );
  }
  const apiKey = flags.apiKey ?? null;
  const adminKey = flags.adminKey ?? null;
  if (runtimeUpdates && !apiKey && !adminKey) {
    warnings.push(
      'WARNING: runtime adapter updates are enabled with no --admin-key or --api-key: anyone who can reach ' +
        'this port can load, replace and unload adapters (from inside --allowed-lora-root)',
    );
  }
  const loadTimeoutSeconds = flags.adapterLoadTimeout ?? DEFAULTS.adapters.loadTimeoutSeconds;
  const engineStallTimeoutSeconds = flags.engineStallTimeout ?? DEFAULTS.server.engineStallTimeoutSeconds;
  if (engineStallTimeoutSeconds > 0 && engineStallTimeoutSeconds <= loadTimeoutSeconds) {
    warnings.push(
      `--engine-stall-timeout (${engineStallTimeoutSeconds} s) is not above --adapter-load-timeout ` +
        `(${loadTimeoutSeconds} s): requests waiting for a slow adapter load may be taken for a stalled engine`,
    );
  }
  warnings.push(...unusedFlagWarnings(flags, runtimeUpdates));
  const maxLoras = flags.maxLoras ?? null;
  const maxCpuLoras = flags.maxCpuLoras ?? null;
  if (maxLoras !== null && maxCpuLoras !== null && maxCpuLoras < maxLoras) {
    throw new Error(`--max-cpu-loras ${maxCpuLoras} is below --max-loras ${maxLoras}: give at least ${maxLoras}`);
  }

  const maxBatchTokens = flags.maxBatchTokens ?? DEFAULTS.limits.maxBatchTokens;
  // Each running sequence's decode takes a token of the step's budget: past it, some would never be scheduled.
  // Without the flag the default shrinks to fit a smaller budget; given both, a mismatch is refused.
  const maxRunningSeqs = flags.maxRunningSeqs ?? Math.min(DEFAULTS.limits.maxRunningSeqs, maxBatchTokens);
  if (maxRunningSeqs > maxBatchTokens) {
    throw new Error(
      `--max-running-seqs ${maxRunningSeqs} is above --max-batch-tokens ${maxBatchTokens}: every running ` +
        `sequence decodes one token a step, so give --max-batch-tokens at least ${maxRunningSeqs}`,
    );
  }

  const config: Config = {
    model: {
      dir,
      demo: !flags.model,
      servedModelName,
      mergeAdapter: flags.mergeAdapter ?? null,
      maxModelLen: context.maxModelLen,
      modelMaxLen: modelMax,
      cacheDir,
    },
    limits: {
      maxBatchTokens,
      maxRunningSeqs,
      stepTimeTargetMs: flags.stepTimeTargetMs ?? DEFAULTS.limits.stepTimeTargetMs,
      kvCacheTokens,
      maxWaitingRequests: flags.maxWaitingRequests ?? null,
    },
    adapters: {
      static: statics,
      loraDir,
      refreshIntervalSeconds: loraDir ? (flags.loraRefreshInterval ?? DEFAULTS.adapters.refreshIntervalSeconds) : 0,
      runtimeUpdates,
      allowedRoots: roots.map((r) => resolve(r)),
      maxLoras,
      maxCpuLoras,
      maxCpuLoraBytes: flags.maxCpuLoraBytes ?? null,
      maxLoraRank: flags.maxLoraRank ?? DEFAULTS.adapters.maxLoraRank,
      loadTimeoutSeconds,
    },
    server: {
      host: flags.host ?? DEFAULTS.server.host,
      port: flags.port ?? DEFAULTS.server.port,
      maxBodyBytes: flags.maxBodyBytes ?? DEFAULTS.server.maxBodyBytes,
      maxPromptBytes: flags.maxPromptBytes ?? null,
      drainTimeoutSeconds: flags.drainTimeout ?? DEFAULTS.server.drainTimeoutSeconds,
      engineStallTimeoutSeconds,
      ui: flags.ui ?? DEFAULTS.server.ui,
      allowedOrigins: flags.allowedOrigins ?? [],
    },
    security: { apiKey, adminKey },
    native: {
      backend: flags.backend ?? DEFAULTS.native.backend,
      threads: flags.threads ?? null,
      isa: (flags.isa as Isa | undefined) ?? null,
      bf16Dot: truthy(flags.bf16Dot),
    },
    precision: {
      dtype: flags.dtype ?? null,
      quantize: flags.quantize ?? null,
      floatLmHead: truthy(flags.floatLmHead),
      loraDtype: flags.loraDtype ?? DEFAULTS.precision.loraDtype,
      kvCacheDtype: flags.kvCacheDtype ?? DEFAULTS.precision.kvCacheDtype,
    },
  };
  return { config, warnings };
}

/** Flags given where nothing reads them: said at start, so a setting that does nothing is not taken for one that does. */
function unusedFlagWarnings(flags: ConfigFlags, runtimeUpdates: boolean): string[] {
  const out: string[] = [];
  if (!flags.loraDir && (flags.loraRefreshInterval ?? 0) > 0) {
    out.push('--lora-refresh-interval has no effect without --lora-dir (there is no store to rescan)');
  }
  if (!runtimeUpdates) {
    const given = [
      (flags.allowedLoraRoot ?? []).length > 0 && '--allowed-lora-root',
      flags.adminKey && '--admin-key',
    ].filter(Boolean);
    if (given.length > 0) {
      out.push(`${given.join(' and ')}: no effect without --enable-lora-runtime-updates (no admin routes)`);
    }
  }
  if (flags.backend === 'reference' || flags.backend === 'cuda') {
    const given = [
      flags.threads !== undefined && '--threads',
      flags.isa !== undefined && '--isa',
      truthy(flags.bf16Dot) && '--bf16-dot',
    ].filter(Boolean);
    if (given.length > 0)
      out.push(`${given.join(', ')}: no effect on the ${flags.backend} backend (native CPU kernels only)`);
  }
  return out;
}
