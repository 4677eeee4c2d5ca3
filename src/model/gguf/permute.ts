/**
 * Undoes convert_hf_to_gguf.py's LlamaModel.permute, which reorders the rows of q and k (and of a LoRA's
 * lora_b for them) for llama.cpp's interleaved RoPE: within each head of d rows, file row 2i + j holds
 * Hugging Face row j·d/2 + i (j ∈ {0, 1}). `m` is row-major [rows, cols] (values, or the bytes of rows of
 * quantized blocks, cols then being a row's bytes).
 */
export function unpermuteRows<T extends Float32Array | Uint8Array>(m: T, cols: number, heads: number): T {
  const rows = m.length / cols;
  const d = rows / heads;
  const half = d / 2;
  const out = (m instanceof Float32Array ? new Float32Array(m.length) : new Uint8Array(m.length)) as T;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * d + 2 * i + j) * cols;
        out.set(m.subarray(from, from + cols) as never, (h * d + j * half + i) * cols);
      }
    }
  }
  return out;
}
