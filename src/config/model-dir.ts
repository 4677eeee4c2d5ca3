/**
 * --model checked before anything reads it, so a wrong path is said as such (not as the first file that
 * failed to open). Messages quote the flag as given, nothing resolved.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ggufModelFile } from '../model/gguf/load.ts';

const EXPECTED =
  'a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) or a llama.cpp GGUF model file';

export async function checkModelDir(dir: string, given: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (!info) {
    throw new Error(
      `--model '${given}': no such directory; give ${EXPECTED}, or leave --model out for the built-in demo`,
    );
  }
  if ((await ggufModelFile(dir)) !== null) return; // a *.gguf, or a folder holding one: read by the GGUF loader
  if (!info.isDirectory()) throw new Error(`--model '${given}' is a file; give ${EXPECTED}`);
  if (!(await stat(join(dir, 'config.json')).catch(() => null))) {
    throw new Error(`--model '${given}' has no config.json; give ${EXPECTED}`);
  }
}
