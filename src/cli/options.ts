/** Option parsers shared by the sub-commands; each flag also reads a LORAPLEX_… variable. */
import { InvalidArgumentError, Option } from 'commander';
import { parseByteSize } from '../config/byte-size.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { truthy } from '../config/env.ts';
import { DEFAULT_ENGINE_OPTIONS, DEFAULT_MAX_CPU_LORAS } from '../engine/llm-engine.ts';
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

/** A size in bytes: 2GiB, 512MB, 1e6 as 1000000, … (config/byte-size.ts). */
export function byteSizeArg(value: string): number {
  const bytes = parseByteSize(value);
  if (Number.isNaN(bytes)) {
    throw new InvalidArgumentError(`expected a size such as 2GiB, 512MB or a number of bytes, got '${value}'`);
  }
  return bytes;
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

/** The engine's flags, shared by `serve` and `generate`. */
export function engineOptions(): Option[] {
  return [
    envOption(
      '--backend <name>',
      'kernels: native (C++ addon), reference (plain TypeScript) or cuda (NVIDIA GPU, where built)',
      'BACKEND',
    )
      .choices(['native', 'reference', 'cuda'])
      .default(DEFAULTS.native.backend),
    envOption('--dtype <dtype>', 'convert the weights on load', 'DTYPE').choices(['f32', 'f16', 'bf16']),
    envOption(
      '--quantize <type>',
      'keep the projections in ggml blocks for the int8 GEMM (q4_k needs rows of 256; others stay --dtype)',
      'QUANTIZE',
    ).choices(['q8_0', 'q4_k']),
    envOption(
      '--float-lm-head',
      'keep lm_head (and a tied embedding) in the float dtype where --quantize or a Q8_0/Q4_K GGUF would keep blocks',
      'FLOAT_LM_HEAD',
    ),
    envOption(
      '--lora-dtype <dtype>',
      "adapter slots' storage (auto: bf16 for a 16-bit checkpoint, else f32; int8: rows quantized, a quarter of f32's bytes)",
      'LORA_DTYPE',
    )
      .choices(['auto', 'f32', 'bf16', 'f16', 'int8'])
      .default(DEFAULTS.precision.loraDtype),
    envOption('--kv-cache-dtype <dtype>', "the KV cache's storage (auto: f32)", 'KV_CACHE_DTYPE')
      .choices(['auto', 'f32', 'bf16'])
      .default(DEFAULTS.precision.kvCacheDtype),
    envOption(
      '--max-model-len <n>',
      "longest prompt + output; at most the model's limit (default: the model's, NIM_MAX_MODEL_LEN)",
      'MAX_MODEL_LEN',
    ).argParser(intArg(1)),
    envOption(
      '--max-loras <n>',
      `adapter slots one batch can mix (NIM_MAX_GPU_LORAS) (default: ${DEFAULT_ENGINE_OPTIONS.maxLoras}; with --adapter only, their count up to that)`,
      'MAX_LORAS',
    ).argParser(intArg(1)),
    envOption(
      '--max-cpu-loras <n>',
      `adapters kept packed in memory, ≥ --max-loras (NIM_MAX_CPU_LORAS) (default: the larger of --max-loras and ${DEFAULT_MAX_CPU_LORAS})`,
      'MAX_CPU_LORAS',
    ).argParser(intArg(1)),
    envOption(
      '--max-cpu-lora-bytes <size>',
      'bytes of packed adapters kept in memory (2GiB, 512MB, …): saved embedding copies weigh more than LoRA factors (default: no byte limit)',
      'MAX_CPU_LORA_BYTES',
    ).argParser(byteSizeArg),
    envOption('--max-lora-rank <n>', 'largest adapter rank accepted (NIM_MAX_LORA_RANK)', 'MAX_LORA_RANK')
      .argParser(intArg(1))
      .default(DEFAULTS.adapters.maxLoraRank),
    envOption('--max-batch-tokens <n>', 'tokens per forward pass (chunked prefill)', 'MAX_BATCH_TOKENS')
      .argParser(intArg(1))
      .default(DEFAULTS.limits.maxBatchTokens),
    envOption(
      '--step-time-target-ms <ms>',
      'latency-aware chunked prefill: steps with decodes take only the prompt tokens that keep them near this time (0: off)',
      'STEP_TIME_TARGET_MS',
    )
      .argParser(floatArg(0))
      .default(DEFAULTS.limits.stepTimeTargetMs),
    envOption(
      '--max-running-seqs <n>',
      `sequences decoded together (default: ${DEFAULTS.limits.maxRunningSeqs}, or --max-batch-tokens where that is smaller)`,
      'MAX_RUNNING_SEQS',
    ).argParser(intArg(1)),
    envOption('--kv-cache-tokens <n>', 'KV cache size in tokens', 'KV_CACHE_TOKENS')
      .argParser(intArg(16))
      .default(DEFAULTS.limits.kvCacheTokens),
    envOption('--threads <n>', 'kernel threads (default: all cores)', 'THREADS').argParser(intArg(1)),
    envOption(
      '--isa <name>',
      'widest instruction set the native kernels may use (default: the best here)',
      'ISA',
    ).choices(['scalar', 'avx2', 'avx512', 'avx512bf16']),
    envOption(
      '--bf16-dot',
      'bf16 weights through bf16 dots (x rounded to bf16): AMX where present (the shrink of bf16 LoRA slots too), else vdpbf16ps',
      'BF16_DOT',
    ),
  ];
}

/** The native kernels' configuration from --threads, --isa and --bf16-dot values (bench/native-env.ts). */
export function nativeConfig(flags: { threads?: number; isa?: string; bf16Dot?: boolean | string }): NativeConfig {
  return { threads: flags.threads, isa: flags.isa as NativeConfig['isa'], bf16Dot: truthy(flags.bf16Dot) };
}
