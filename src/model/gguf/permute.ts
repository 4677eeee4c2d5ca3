/**
 * Undoes convert_hf_to_gguf.py's LlamaModel.permute, which reorders the rows of q and k (and of a LoRA's
 * lora_b for them) for llama.cpp's interleaved RoPE: within each head of d rows, file row 2i + j holds
 * Hugging Face row j·d/2 + i (j ∈ {0, 1}). `m` is row-major [rows, cols].
 */
export function unpermuteRows(m: Float32Array, cols: number, heads: number): Float32Array {
  const rows = m.length / cols;
  const d = rows / heads;
  const half = d / 2;
  const out = new Float32Array(m.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * d + 2 * i + j) * cols;
        out.set(m.subarray(from, from + cols), (h * d + j * half + i) * cols);
      }
    }
  }
  return out;
}
