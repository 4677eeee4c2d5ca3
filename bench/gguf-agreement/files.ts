/**
 * The GGUF files the check compares, and how the derived ones are made from SmolLM2's BF16 file with
 * llama-quantize (idempotent, into the llama.cpp cache) when they are missing.
 *   Q8_0-bf16-embd  --pure --token-embedding-type bf16 … Q8_0: projections Q8_0, the tied embedding/head bf16
 *   Q4_K-down       --pure --tensor-type ffn_down=q4_k … Q8_0: SmolLM2's other matrices have 576 columns, not
 *                   a multiple of Q4_K's 256, so plain Q4_K / Q4_K_M files fall back to Q5_0 there (a type
 *                   loraplex does not read); ffn_down (1536 columns) is the one Q4_K can hold.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheRoot } from '../../src/demo/demo-model.ts';

export interface AgreementFile {
  label: string;
  path: string;
  /** llama-quantize arguments (before input, output, type) and type, from SmolLM2's BF16 file. */
  quantize?: { flags: string[]; type: string };
}

const smol = (t: string) => join(cacheRoot(), 'llamacpp', 'models', `SmolLM2-135M-Instruct.${t}.gguf`);
const oneB = (t: string) => join(cacheRoot(), 'bench-models', 'llama3-1b', 'gguf', `llama3-1b-${t}.gguf`);

export const FILE_SETS: Record<string, AgreementFile[]> = {
  smollm2: [
    { label: 'SmolLM2-135M BF16', path: smol('BF16') },
    { label: 'SmolLM2-135M Q8_0', path: smol('Q8_0') },
    {
      label: 'SmolLM2-135M Q8_0, BF16 embedding/head',
      path: smol('Q8_0-bf16-embd'),
      quantize: { flags: ['--pure', '--token-embedding-type', 'bf16'], type: 'Q8_0' },
    },
    {
      label: 'SmolLM2-135M Q4_K (ffn_down) + Q8_0',
      path: smol('Q4_K-down'),
      quantize: { flags: ['--pure', '--tensor-type', 'ffn_down=q4_k'], type: 'Q8_0' },
    },
  ],
  '1b': [
    { label: 'Llama-3.2-1B shape (random) Q8_0', path: oneB('Q8_0') },
    { label: 'Llama-3.2-1B shape (random) Q4_K', path: oneB('Q4_K') },
  ],
};

/** The file's path once it exists (made with llama-quantize if it has a recipe); null when it cannot be. */
export function ensureFile(f: AgreementFile, llamaBin: string): string | null {
  if (existsSync(f.path)) return f.path;
  const source = smol('BF16');
  if (!f.quantize || !existsSync(source)) return null;
  const quantize = join(dirname(llamaBin), 'llama-quantize');
  const tmp = `${f.path}.tmp`;
  const log = execFileSync(quantize, [...f.quantize.flags, source, tmp, f.quantize.type], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  writeFileSync(`${f.path}.log`, log);
  renameSync(tmp, f.path);
  return f.path;
}
