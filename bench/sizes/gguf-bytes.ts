/**
 * What a GGUF file holds, from its header: bytes of tensor data a decode step reads (every tensor but the token
 * embedding, unless the embedding is also the output head), and how many bytes each ggml type takes.
 *
 *   const { bytesPerToken, bytesByType } = await ggufBytes('/…/llama3-8b-Q4_K_M.gguf');
 */
import { open } from 'node:fs/promises';
import { GGMLQuantizationType } from '@huggingface/gguf';
import { GgufFile } from '../../src/model/gguf/gguf-file.ts';

export interface GgufBytes {
  fileBytes: number;
  bytesPerToken: number;
  /** e.g. {Q4_K: 3.9e9, Q6_K: 0.8e9, F32: 2.6e5} */
  bytesByType: Record<string, number>;
  /**
   * Bytes loraplex would hold after loading, for a memory check before loading: Q8_0 / Q4_K / Q6_K projections
   * and head (output.weight, or token_embd when tied) stay blocks; an untied token_embd and other types become
   * bf16, as src/model/weights.ts loads them. An estimate: the loader is what decides.
   */
  loadEstimateBytes: number;
}

const KEPT = new Set(['Q8_0', 'Q4_K', 'Q6_K']);

export async function ggufBytes(path: string): Promise<GgufBytes> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const file = await GgufFile.fromHandle(fh, size);
    const tied = !file.tensors.has('output.weight');
    let bytesPerToken = 0;
    let loadEstimateBytes = 0;
    const bytesByType: Record<string, number> = {};
    for (const t of file.tensors.values()) {
      const type = GGMLQuantizationType[t.type] ?? String(t.type);
      bytesByType[type] = (bytesByType[type] ?? 0) + t.byteLength;
      if (t.name !== 'token_embd.weight' || tied) bytesPerToken += t.byteLength;
      const kept = KEPT.has(type) && (t.name !== 'token_embd.weight' || tied);
      loadEstimateBytes += kept ? t.byteLength : 2 * t.ne.reduce((a, b) => a * b, 1);
    }
    return { fileBytes: size, bytesPerToken, bytesByType, loadEstimateBytes };
  } finally {
    await fh.close();
  }
}
