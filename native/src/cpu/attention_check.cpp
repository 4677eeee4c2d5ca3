// Argument checks of the attention kernels: everything paged_attention reads must be in bounds.
#include <cmath>
#include <string>

#include "loraplex/attention.h"

namespace loraplex {

std::string check_attention_shape(const AttentionShape& s) {
  if (s.num_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0 || s.block_size <= 0)
    return "numHeads, numKvHeads, headDim and blockSize must be positive";
  if (s.num_heads % s.num_kv_heads != 0) return "numHeads must be a multiple of numKvHeads (grouped-query attention)";
  return "";
}

static std::string check_cache(int64_t k_len, int64_t v_len, const AttentionShape& s) {
  const int64_t block_elems = int64_t(s.block_size) * s.num_kv_heads * s.head_dim;
  if (k_len != v_len) return "kCache and vCache must have the same length";
  if (k_len % block_elems != 0) return "cache length must be a multiple of blockSize·numKvHeads·headDim";
  return "";
}

std::string check_paged_attention(int64_t q_length, int64_t k_cache_length, int64_t v_cache_length,
                                  int64_t out_length, const AttentionShape& s, const AttentionBatch& b) {
  std::string err = check_attention_shape(s);
  if (err.empty()) err = check_cache(k_cache_length, v_cache_length, s);
  if (!err.empty()) return err;
  if (!(s.scale >= 0.0f) || !std::isfinite(s.scale)) return "scale must be finite and > 0 (0: 1/√headDim)";
  if (!(s.softcap >= 0.0f) || !std::isfinite(s.softcap)) return "softcap must be finite and ≥ 0 (0: off)";
  if (b.num_seqs < 0) return "numSeqs must be ≥ 0";
  if (b.num_seqs == 0) return "";
  const int64_t num_blocks = k_cache_length / (int64_t(s.block_size) * s.num_kv_heads * s.head_dim);
  if (b.q_start[0] < 0) return "qStart[0] must be ≥ 0";
  for (int i = 0; i < b.num_seqs; ++i) {
    const int64_t q_len = int64_t(b.q_start[i + 1]) - b.q_start[i];
    if (q_len < 0) return "qStart must be non-decreasing (sequence " + std::to_string(i) + ")";
    const int64_t kv = b.kv_len[i];
    if (kv < q_len)
      return "kvLen[" + std::to_string(i) + "] = " + std::to_string(kv) + " is smaller than its " +
             std::to_string(q_len) + " queries (kvLen counts this step's tokens too)";
    if (kv == 0) continue;
    const int64_t blocks = (kv + s.block_size - 1) / s.block_size;
    const int64_t start = b.block_table_start[i];
    if (start < 0 || start + blocks > b.block_tables_length)
      return "blockTables too short for sequence " + std::to_string(i) + " (needs " + std::to_string(blocks) +
             " blocks from blockTableStart " + std::to_string(start) + ")";
    for (int64_t j = 0; j < blocks; ++j) {
      const int64_t block = b.block_tables[start + j];
      if (block < 0 || block >= num_blocks)
        return "block id " + std::to_string(block) + " of sequence " + std::to_string(i) +
               " is outside the cache (" + std::to_string(num_blocks) + " blocks)";
    }
  }
  const int64_t rows = b.q_start[b.num_seqs];
  const int64_t need = rows * s.num_heads * s.head_dim;
  if (q_length < need) return "q is shorter than qStart[numSeqs]·numHeads·headDim";
  if (out_length < need) return "out is shorter than qStart[numSeqs]·numHeads·headDim";
  return "";
}

}  // namespace loraplex
