/** Option parsers shared by the sub-commands; each flag also reads a LORAPLEX_… variable. */
import { InvalidArgumentError, Option } from 'commander';
import type { NativeConfig } from '../kernels/native/config.ts';

export function intArg(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}, got '${value}'`);
    return n;
  };
}

export function floatArg(min: number, max = Number.POSITIVE_INFINITY) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got '${value}'`);
    }
    return n;
  };
}

/** --adapter NAME=DIR, repeatable. */
export function adapterArg(value: string, previous: { name: string; dir: string }[] = []) {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new InvalidArgumentError(`expected NAME=DIR, got '${value}'`);
  const name = value.slice(0, eq);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
    throw new InvalidArgumentError(`adapter name '${name}' must be letters, digits, '.', '_' or '-' (no paths)`);
  }
  if (previous.some((a) => a.name === name)) throw new InvalidArgumentError(`adapter '${name}' is given twice`);
  return [...previous, { name, dir: value.slice(eq + 1) }];
}

export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(`LORAPLEX_${env}`);
}

export function engineOptions(): Option[] {
  return [
    envOption('--backend <name>', 'kernels: native (C++ addon) or reference (plain TypeScript)', 'BACKEND')
      .choices(['native', 'reference'])
      .default('native'),
    envOption('--dtype <dtype>', 'convert the weights on load', 'DTYPE').choices(['f32', 'f16', 'bf16']),
    envOption('--max-loras <n>', 'adapter slots one batch can mix (NIM_MAX_GPU_LORAS)', 'MAX_LORAS').argParser(
      intArg(1),
    ),
    envOption(
      '--max-cpu-loras <n>',
      'adapters kept packed in memory, ≥ --max-loras (NIM_MAX_CPU_LORAS)',
      'MAX_CPU_LORAS',
    ).argParser(intArg(1)),
    envOption('--max-lora-rank <n>', 'largest adapter rank accepted (NIM_MAX_LORA_RANK)', 'MAX_LORA_RANK')
      .argParser(intArg(1))
      .default(64),
    envOption('--max-batch-tokens <n>', 'tokens per forward pass (chunked prefill)', 'MAX_BATCH_TOKENS')
      .argParser(intArg(1))
      .default(2048),
    envOption('--max-running-seqs <n>', 'sequences decoded together', 'MAX_RUNNING_SEQS')
      .argParser(intArg(1))
      .default(128),
    envOption('--kv-cache-tokens <n>', 'KV cache size in tokens', 'KV_CACHE_TOKENS')
      .argParser(intArg(16))
      .default(32768),
    envOption('--adapter-load-timeout <seconds>', 'seconds one adapter load may take', 'ADAPTER_LOAD_TIMEOUT')
      .argParser(floatArg(0.001, 3600))
      .default(60),
    envOption('--threads <n>', 'kernel threads (default: all cores)', 'THREADS').argParser(intArg(1)),
    envOption(
      '--isa <name>',
      'widest instruction set the native kernels may use (default: the best here)',
      'ISA',
    ).choices(['scalar', 'avx2', 'avx512', 'avx512bf16']),
    envOption('--bf16-dot', 'bf16 weights through vdpbf16ps on AVX-512 BF16 (x rounded to bf16)', 'BF16_DOT'),
  ];
}

/** The native kernels' configuration from --threads, --isa and --bf16-dot (their LORAPLEX_… variables included). */
export function nativeConfig(flags: { threads?: number; isa?: string; bf16Dot?: boolean | string }): NativeConfig {
  const bf16Dot =
    flags.bf16Dot === true || (typeof flags.bf16Dot === 'string' && /^(1|true|yes|on)$/i.test(flags.bf16Dot));
  return { threads: flags.threads, isa: flags.isa as NativeConfig['isa'], bf16Dot };
}

/** NIM's (and vLLM's) variable names, read as the LORAPLEX_… variable they stand for when that one is unset. */
export const ENV_ALIASES: Record<string, string> = {
  NIM_PEFT_SOURCE: 'LORAPLEX_LORA_DIR',
  NIM_PEFT_REFRESH_INTERVAL: 'LORAPLEX_LORA_REFRESH_INTERVAL',
  NIM_MAX_GPU_LORAS: 'LORAPLEX_MAX_LORAS',
  NIM_MAX_CPU_LORAS: 'LORAPLEX_MAX_CPU_LORAS',
  NIM_MAX_LORA_RANK: 'LORAPLEX_MAX_LORA_RANK',
  VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'LORAPLEX_ENABLE_LORA_RUNTIME_UPDATES',
};

export function applyEnvAliases(env: NodeJS.ProcessEnv = process.env) {
  for (const [alias, name] of Object.entries(ENV_ALIASES)) {
    if (env[name] === undefined && env[alias] !== undefined) env[name] = env[alias];
  }
}
