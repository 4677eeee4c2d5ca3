/**
 * The model sizes bench:peers runs its workloads at: SmolLM2-135M-Instruct (the default) and the
 * Llama-3.2-1B- and Llama-3.1-8B-shaped bench models (`npm run bench:models`; the 8B as Q4_K GGUF only, what CPU
 * users hold at that size: loraplex-q4_k and llamacpp-q4_k serve it). A size names everything that differs between
 * them: the bf16 safetensors and the PEFT store every server gets, the GGUF files llama.cpp serves, the name
 * a base request gives, and where the artifact, chart and docs section go.
 */
import { basename, join } from 'node:path';
import { cacheRoot } from '../../src/demo/demo-model.ts';

export type LlamacppFormat = 'BF16' | 'Q8_0' | 'Q4_1' | 'Q4_K';

export interface PeerSize {
  key: 'smollm2' | '1b' | '8b';
  /** The artifact's description of the model. */
  label: string;
  /** The bf16 safetensors model folder. */
  model: string;
  /** Where the 32 synthetic PEFT adapters live (bench/peft-store.ts makes them there). */
  storeRoot: string;
  /** The name llama.cpp and vLLM serve the base under (loraplex serves the model folder's name). */
  servedName: string;
  /** llama.cpp's model file in a weight format (null: this size has none in that format). */
  gguf(format: LlamacppFormat): string | null;
  /** Where peers/llamacpp/setup.sh writes the store's adapters as GGUF LoRA. */
  ggufAdapters(store: string): string;
  artifact: string;
  svg: string;
  /** The docs section's marker name (`<!-- bench:NAME begin … -->`). */
  marker: string;
}

export function peerSize(key: string | undefined, docsDir: string): PeerSize {
  const cache = cacheRoot();
  if (key === undefined || key === 'smollm2') {
    return {
      key: 'smollm2',
      label: 'SmolLM2-135M-Instruct',
      model: join(cache, 'smollm2', 'model-bf16'),
      storeRoot: join(cache, 'bench-stores', 'smollm2'),
      servedName: 'SmolLM2',
      gguf: (format) =>
        format === 'Q4_K' ? null : join(cache, 'llamacpp', 'models', `SmolLM2-135M-Instruct.${format}.gguf`),
      ggufAdapters: (store) => join(cache, 'llamacpp', 'adapters', basename(store)),
      artifact: join(docsDir, 'figures', 'peers.json'),
      svg: join(docsDir, 'figures', 'peers.svg'),
      marker: 'bench:peers',
    };
  }
  if (key === '1b') return benchModelSize('1b', 'Llama-3.2-1B', ['BF16', 'Q8_0', 'Q4_K'], cache, docsDir);
  if (key === '8b') return benchModelSize('8b', 'Llama-3.1-8B', ['Q4_K'], cache, docsDir);
  throw new Error(`--size: unknown '${key}' (known: smollm2, 1b, 8b)`);
}

/** A bench model (`npm run bench:models`): <cache>/bench-models/llama3-<key>/{model,adapters,gguf}. */
function benchModelSize(
  key: '1b' | '8b',
  shape: string,
  formats: LlamacppFormat[],
  cache: string,
  docsDir: string,
): PeerSize {
  const name = `llama3-${key}`;
  const root = join(cache, 'bench-models', name);
  return {
    key,
    label: `${shape}-shaped bench model (random weights, real config and tokenizer)`,
    model: join(root, 'model'),
    storeRoot: join(root, 'adapters'),
    servedName: name,
    gguf: (format) => (formats.includes(format) ? join(root, 'gguf', `${name}-${format}.gguf`) : null),
    ggufAdapters: (store) => join(cache, 'llamacpp', 'adapters', `${name}-${basename(store)}`),
    artifact: join(docsDir, 'figures', `peers-${key}.json`),
    svg: join(docsDir, 'figures', `peers-${key}.svg`),
    marker: `bench:peers-${key}`,
  };
}
