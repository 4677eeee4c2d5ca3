/**
 * llama.cpp's names for the LoRA tensors of a GGUF adapter, mapped to the model spec's projections:
 *
 *   blk.3.attn_q.weight.lora_a   ne [in, rank]   = PEFT lora_A [rank, in]    → layer 3, q_proj
 *   blk.3.attn_q.weight.lora_b   ne [rank, out]  = PEFT lora_B [out, rank]
 *
 * The base tensor names are llama.cpp's (src/model/gguf/llama-cpp-names.ts). llama.cpp skips
 * "*_norm.weight" tensors (mergekit's) and refuses any other suffix, as this does.
 */
import type { ModelFamily } from '../../../model/config.ts';
import { shownName } from '../../../model/gguf/gguf-file.ts';
import { LLAMA_CPP_TENSOR } from '../../../model/gguf/llama-cpp-names.ts';
import type { ModuleKind } from '../../../model/spec/index.ts';
import { specOf } from '../../../model/spec/index.ts';
import { createError } from '../../../observability/errors.ts';

/** Base tensors llama.cpp can adapt and loraplex does not: refused by name, not as a wrong base model. */
const NOT_ADAPTED = new Set(['token_embd.weight', 'output.weight']);

export type GgufLoraFactor = 'a' | 'b';

export interface GgufLoraTensorName {
  tensor: string; // the full name
  base: string; // the base tensor, e.g. blk.3.attn_q.weight
  layer: number;
  kind: ModuleKind;
  factor: GgufLoraFactor;
}

const LORA_TENSOR = /^(.*)\.lora_(a|b)$/;
const BLOCK_TENSOR = /^blk\.(0|[1-9]\d{0,5})\.([a-z0-9_]+)\.weight$/;

/** The family's projections by llama.cpp tensor name ("attn_q" → q_proj). */
function projectionsByName(family: ModelFamily): Map<string, ModuleKind> {
  return new Map(specOf(family).modules.map((m) => [LLAMA_CPP_TENSOR[m.role], m.kind]));
}

/** null for a tensor llama.cpp skips ("*_norm.weight"); throws for one it would refuse. */
export function parseGgufLoraName(tensor: string, family: ModelFamily, file: string): GgufLoraTensorName | null {
  const shown = shownName(tensor);
  const lora = LORA_TENSOR.exec(tensor);
  if (!lora) {
    if (tensor.endsWith('_norm.weight')) return null;
    throw createError('ADAPTER_TENSOR_UNEXPECTED', {
      file,
      field: `tensor '${shown}'`,
      problem:
        'has an unexpected suffix; a GGUF LoRA adapter holds ".lora_a" / ".lora_b" tensors (and norms llama.cpp ignores)',
      hint: "convert the adapter with llama.cpp's convert_lora_to_gguf.py",
    });
  }
  const [, base, factor] = lora;
  const block = BLOCK_TENSOR.exec(base);
  const kind = block ? projectionsByName(family).get(block[2]) : undefined;
  if (!block || kind === undefined) {
    if (NOT_ADAPTED.has(base)) {
      throw createError('ADAPTER_UNSUPPORTED_TARGET', {
        file,
        field: `tensor '${shown}'`,
        module: base,
        supported: [...projectionsByName(family).keys()],
      });
    }
    throw createError('ADAPTER_BASE_MISMATCH', {
      file,
      problem: `LoRA tensor '${shown}' adapts '${shownName(base)}', which a ${specOf(family).architecture} base model does not have as an adaptable projection (${[...projectionsByName(family).keys()].join(', ')})`,
    });
  }
  return { tensor, base, layer: Number(block[1]), kind, factor: factor as GgufLoraFactor };
}
