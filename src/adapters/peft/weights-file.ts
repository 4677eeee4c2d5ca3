/**
 * Finds a PEFT adapter's weights: adapter_model.safetensors. Pickle-based files (adapter_model.bin, .pt,
 * .pth, .pkl, .ckpt) can run code when unpickled, so they are refused by name and never opened.
 */
import { readdir } from 'node:fs/promises';
import { createError } from '../../observability/errors.ts';
import { type AdapterDir, adapterFileLabel } from '../adapter-files.ts';

export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.pkl', '.pickle', '.ckpt'];

/** The weights file's name inside the adapter directory. */
export async function findPeftWeights(d: AdapterDir): Promise<string> {
  const names = (await readdir(d.dir)).sort();
  if (names.includes(PEFT_WEIGHTS_FILE)) return PEFT_WEIGHTS_FILE;
  const pickles = names.filter((n) => PICKLE_EXTENSIONS.some((ext) => n.toLowerCase().endsWith(ext)));
  if (pickles.length > 0) {
    const first = pickles.includes('adapter_model.bin') ? 'adapter_model.bin' : pickles[0];
    throw createError('ADAPTER_PICKLE_REFUSED', { file: adapterFileLabel(d.name, first) });
  }
  throw createError('ADAPTER_FILE_MISSING', {
    dir: `'${d.name}'`,
    file: PEFT_WEIGHTS_FILE,
    hint: "a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors, as PEFT's save_pretrained writes them",
  });
}
