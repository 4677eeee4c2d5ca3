// bench_attention: decode attention at Llama-3.1-8B shapes as a fraction of HBM bandwidth (KV bytes read),
// a 2048-token prefill as TFLOP/s (informational), and RoPE + cache write.
#include <algorithm>
#include <numeric>

#include "../check/groups.h"
#include "loraplex/cuda/attention.h"

namespace loraplex::cuda {

namespace {

using harness::DeviceBuffer;
using harness::Harness;

struct DeviceBatch {
  DeviceBuffer<int32_t> q_start, kv_len, tables, table_start;
  DeviceAttentionBatch view{};
  int64_t num_blocks = 0;
  int64_t kv_tokens = 0;
  int64_t attended_pairs = 0;  // Σ over queries of the keys each attends to (causal)
};

// num_seqs sequences of q_len queries ending at kv_len, blocks shuffled over the cache.
DeviceBatch make_batch(int num_seqs, int q_len, int kv_len, int block_size, harness::Rng& rng) {
  DeviceBatch b;
  const int per_seq = (kv_len + block_size - 1) / block_size;
  b.num_blocks = int64_t(num_seqs) * per_seq;
  std::vector<int32_t> ids(b.num_blocks), qs(num_seqs + 1), kv(num_seqs, kv_len), starts(num_seqs);
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t i = b.num_blocks - 1; i > 0; --i) std::swap(ids[i], ids[rng.next() % (i + 1)]);
  for (int s = 0; s <= num_seqs; ++s) qs[s] = s * q_len;
  for (int s = 0; s < num_seqs; ++s) starts[s] = s * per_seq;
  b.q_start = DeviceBuffer<int32_t>(qs);
  b.kv_len = DeviceBuffer<int32_t>(kv);
  b.tables = DeviceBuffer<int32_t>(ids);
  b.table_start = DeviceBuffer<int32_t>(starts);
  b.view = {b.q_start.get(), b.kv_len.get(), b.tables.get(), b.table_start.get(), num_seqs, num_seqs * q_len,
            q_len, kv_len};
  b.kv_tokens = int64_t(num_seqs) * kv_len;
  for (int i = 0; i < q_len; ++i) b.attended_pairs += int64_t(num_seqs) * (kv_len - q_len + i + 1);
  return b;
}

void bench_decode(Harness& h, const AttentionShape& s, KvDtype dtype, int num_seqs, int kv_len, harness::Rng& rng) {
  DeviceBatch b = make_batch(num_seqs, 1, kv_len, s.block_size, rng);
  const int64_t width = int64_t(s.num_kv_heads) * s.head_dim, esize = dtype == KvDtype::F32 ? 4 : 2;
  const size_t cache_bytes = size_t(b.num_blocks) * s.block_size * width * esize;
  DeviceBuffer<uint8_t> k(cache_bytes), v(cache_bytes);
  k.zero(), v.zero();
  DeviceBuffer<float> q(size_t(num_seqs) * s.num_heads * s.head_dim), out(q.size());
  q.zero();
  const double ms = harness::time_ms(
      [&] { paged_attention(q.get(), k.get(), v.get(), dtype, out.get(), s, b.view, 0); }, 3, 20);
  LPX_CUDA(cudaGetLastError());
  const double bytes = double(b.kv_tokens) * width * esize * 2;
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  h.figure(harness::fmt("attention decode %.0f seqs kv %.0f Hq32 Hkv8 D128 ", num_seqs, kv_len) +
               (dtype == KvDtype::F32 ? "f32" : "bf16"),
           {{"us", ms * 1e3}, {"gbs", gbs}, {"frac_hbm", h.hbm_gbs > 0 ? gbs / h.hbm_gbs : 0}},
           "KV bytes read / time; target ≥ 0.6");
}

void bench_prefill(Harness& h, const AttentionShape& s, KvDtype dtype, int q_len, harness::Rng& rng) {
  DeviceBatch b = make_batch(1, q_len, q_len, s.block_size, rng);
  const int64_t width = int64_t(s.num_kv_heads) * s.head_dim, esize = dtype == KvDtype::F32 ? 4 : 2;
  const size_t cache_bytes = size_t(b.num_blocks) * s.block_size * width * esize;
  DeviceBuffer<uint8_t> k(cache_bytes), v(cache_bytes);
  k.zero(), v.zero();
  DeviceBuffer<float> q(size_t(q_len) * s.num_heads * s.head_dim), out(q.size());
  q.zero();
  const double ms = harness::time_ms(
      [&] { paged_attention(q.get(), k.get(), v.get(), dtype, out.get(), s, b.view, 0); }, 2, 5);
  LPX_CUDA(cudaGetLastError());
  const double flops = 4.0 * double(b.attended_pairs) * s.num_heads * s.head_dim;
  h.figure(harness::fmt("attention prefill %.0f tokens Hq32 Hkv8 D128 ", q_len) +
               (dtype == KvDtype::F32 ? "f32" : "bf16"),
           {{"ms", ms}, {"tflops", flops / (ms * 1e-3) / 1e12}}, "causal FLOPs (q·k and p·v), f32 SIMT; informational");
}

void bench_rope(Harness& h, const AttentionShape& s, KvDtype dtype, int tokens) {
  const int D = s.head_dim;
  const int64_t esize = dtype == KvDtype::F32 ? 4 : 2;
  DeviceBuffer<float> qkv(size_t(tokens) * (s.num_heads + 2 * s.num_kv_heads) * D), q(size_t(tokens) * s.num_heads * D);
  DeviceBuffer<float> freq(std::vector<float>(D / 2, 1e-3f));
  std::vector<int32_t> idx(tokens);
  std::iota(idx.begin(), idx.end(), 0);
  DeviceBuffer<int32_t> pos(idx), slots(idx);
  DeviceBuffer<uint8_t> k(size_t(tokens) * s.num_kv_heads * D * esize), v(k.size());
  qkv.zero();
  const double ms = harness::time_ms([&] {
    rope_and_cache_write(qkv.get(), tokens, s, pos.get(), freq.get(), q.get(), k.get(), v.get(), dtype, slots.get(), 0);
  });
  LPX_CUDA(cudaGetLastError());
  const double bytes = double(tokens) * D * ((s.num_heads + 2 * s.num_kv_heads) * 4 + s.num_heads * 4 +
                                             2 * s.num_kv_heads * esize);
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  h.figure(harness::fmt("rope + cache write %.0f tokens Hq32 Hkv8 D128 ", tokens) +
               (dtype == KvDtype::F32 ? "f32" : "bf16"),
           {{"us", ms * 1e3}, {"gbs", gbs}, {"frac_hbm", h.hbm_gbs > 0 ? gbs / h.hbm_gbs : 0}});
}

}  // namespace

void bench_attention(Harness& h) {
  harness::Rng rng(7);
  AttentionShape llama{32, 8, 128, 16};
  for (KvDtype dtype : {KvDtype::Bf16, KvDtype::F32}) {
    bench_decode(h, llama, dtype, 64, 1024, rng);
    bench_decode(h, llama, dtype, 64, 2048, rng);
  }
  bench_decode(h, llama, KvDtype::Bf16, 4, 8192, rng);  // few sequences: the key split carries it
  bench_decode(h, llama, KvDtype::Bf16, 256, 512, rng);
  bench_prefill(h, llama, KvDtype::Bf16, 2048, rng);
  bench_prefill(h, llama, KvDtype::F32, 2048, rng);
  bench_rope(h, llama, KvDtype::Bf16, 64);
  bench_rope(h, llama, KvDtype::Bf16, 2048);
  bench_rope(h, llama, KvDtype::F32, 2048);
}

}  // namespace loraplex::cuda
