/** The environment's part of the configuration: NIM's and vLLM's variable names, and LORAPLEX_CACHE. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/** NIM's (and vLLM's) variable names, read as the LORAPLEX_… variable they stand for when that one is unset. */
export const ENV_ALIASES: Record<string, string> = {
  NIM_PEFT_SOURCE: 'LORAPLEX_LORA_DIR',
  NIM_PEFT_REFRESH_INTERVAL: 'LORAPLEX_LORA_REFRESH_INTERVAL',
  NIM_MAX_GPU_LORAS: 'LORAPLEX_MAX_LORAS',
  NIM_MAX_CPU_LORAS: 'LORAPLEX_MAX_CPU_LORAS',
  NIM_MAX_LORA_RANK: 'LORAPLEX_MAX_LORA_RANK',
  NIM_MAX_MODEL_LEN: 'LORAPLEX_MAX_MODEL_LEN',
  NIM_SERVED_MODEL_NAME: 'LORAPLEX_SERVED_MODEL_NAME',
  VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'LORAPLEX_ENABLE_LORA_RUNTIME_UPDATES',
};

/** Fills each unset LORAPLEX_… variable from its alias (commander then reads them with the flags). */
export function applyEnvAliases(env: Record<string, string | undefined>) {
  for (const [alias, name] of Object.entries(ENV_ALIASES)) {
    if (env[name] === undefined && env[alias] !== undefined) env[name] = env[alias];
  }
}

/** Where the demo model is written: LORAPLEX_CACHE, else ~/.cache/loraplex. */
export function cacheDirOf(env: Env): string {
  return env.LORAPLEX_CACHE ?? join(homedir(), '.cache', 'loraplex');
}

/** Boolean flags given through the environment arrive as strings. */
export function truthy(value: boolean | string | undefined): boolean {
  return value === true || (typeof value === 'string' && /^(1|true|yes|on)$/i.test(value));
}
