// check_attention: the CUDA RoPE + cache write and paged attention against the CPU kernels on randomized
// batches. RoPE and the cache contents must match bit for bit; attention to f32 rounding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "groups.h"
#include "loraplex/attention.h"
#include "loraplex/cuda/attention.h"

namespace loraplex::cuda {

namespace {

using harness::DeviceBuffer;
using harness::Harness;
using harness::Rng;

struct Seq {
  int q_len, kv_len;
};

// A paged cache and block tables for `seqs`: every sequence's blocks shuffled over the cache, with unused
// blocks and a junk table entry between sequences, so nothing relies on adjacency.
struct PagedBatch {
  std::vector<int32_t> q_start, kv_len, tables, table_start;
  int64_t num_blocks = 0;
  int max_q_len = 0, max_kv_len = 0;

  PagedBatch(const std::vector<Seq>& seqs, int block_size, int q_offset, Rng& rng) {
    int64_t needed = 0;
    for (auto& s : seqs) needed += (s.kv_len + block_size - 1) / block_size;
    num_blocks = needed + 3;
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    for (int64_t i = num_blocks - 1; i > 0; --i) std::swap(ids[i], ids[rng.next() % (i + 1)]);
    int64_t next = 0;
    q_start.push_back(q_offset);
    for (auto& s : seqs) {
      tables.push_back(ids[rng.next() % num_blocks]);  // junk entry before each table
      table_start.push_back(int32_t(tables.size()));
      for (int b = 0; b < (s.kv_len + block_size - 1) / block_size; ++b) tables.push_back(ids[next++]);
      q_start.push_back(q_start.back() + s.q_len);
      kv_len.push_back(s.kv_len);
      max_q_len = std::max(max_q_len, s.q_len);
      max_kv_len = std::max(max_kv_len, s.kv_len);
    }
  }
  int num_tokens() const { return q_start.back(); }
};

// Random cache contents: f32 values, or bf16 bit patterns of random values.
std::vector<float> random_f32(size_t n, Rng& rng) { return rng.vec(n); }
std::vector<uint16_t> random_bf16(size_t n, Rng& rng) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(rng.uniform());
  return v;
}

struct AttnCase {
  std::string name;
  AttentionShape shape;
  KvDtype dtype;
  std::vector<Seq> seqs;
  int q_offset = 0;  // q_start[0]
};

template <typename KV>
void run_attention_case(Harness& h, const AttnCase& c, Rng& rng, const std::vector<KV>& k_host,
                        const std::vector<KV>& v_host, const PagedBatch& b) {
  const AttentionShape& s = c.shape;
  const int T = b.num_tokens();
  const size_t q_elems = size_t(T) * s.num_heads * s.head_dim;
  const std::vector<float> q = rng.vec(q_elems, -2.0f, 2.0f);
  std::vector<float> want(q_elems, 7.0f);
  const AttentionBatch cpu_batch{b.q_start.data(),        b.kv_len.data(), b.tables.data(), b.table_start.data(),
                                 int64_t(b.tables.size()), int(b.kv_len.size())};
  const std::string err = check_paged_attention(int64_t(q_elems), int64_t(k_host.size()), int64_t(v_host.size()),
                                                int64_t(q_elems), s, cpu_batch);
  if (!err.empty()) {
    h.check("attention " + c.name, false, "bad case: " + err);
    return;
  }
  paged_attention(q.data(), k_host.data(), v_host.data(), c.dtype, want.data(), s, cpu_batch);

  DeviceBuffer<float> dq(q), dout(std::vector<float>(q_elems, 7.0f));
  DeviceBuffer<KV> dk(k_host), dv(v_host);
  DeviceBuffer<int32_t> dqs(b.q_start), dkv(b.kv_len), dtab(b.tables), dts(b.table_start);
  const DeviceAttentionBatch batch{dqs.get(), dkv.get(), dtab.get(), dts.get(),
                                   int(b.kv_len.size()), T, b.max_q_len, b.max_kv_len};
  paged_attention(dq.get(), dk.get(), dv.get(), c.dtype, dout.get(), s, batch, 0);
  LPX_CUDA(cudaGetLastError());
  LPX_CUDA(cudaDeviceSynchronize());
  const std::vector<float> got = dout.download();
  // Outputs are convex mixes of values in [-1, 1]; the scores' f32 rounding grows with the head dim.
  const double tol = 2e-5 * std::sqrt(double(s.head_dim));
  auto [max_abs, worst] = harness::compare(got, want, tol, tol);
  h.check("attention " + c.name, worst <= 1.0,
          harness::fmt("max |err| %.3g (tol %.2g), %.0f tokens", max_abs, tol, double(T)));
}

void attention_case(Harness& h, const AttnCase& c, Rng& rng) {
  const PagedBatch b(c.seqs, c.shape.block_size, c.q_offset, rng);
  const size_t cache_elems = size_t(b.num_blocks) * c.shape.block_size * c.shape.num_kv_heads * c.shape.head_dim;
  if (c.dtype == KvDtype::F32)
    run_attention_case<float>(h, c, rng, random_f32(cache_elems, rng), random_f32(cache_elems, rng), b);
  else
    run_attention_case<uint16_t>(h, c, rng, random_bf16(cache_elems, rng), random_bf16(cache_elems, rng), b);
}

AttentionShape shape_of(int hq, int hkv, int d, int bs, int window = 0, float scale = 0, float softcap = 0,
                        int rotary = 0) {
  AttentionShape s{hq, hkv, d, bs};
  s.sliding_window = window, s.scale = scale, s.softcap = softcap, s.rotary_dim = rotary;
  return s;
}

std::vector<Seq> random_seqs(Rng& rng, int n, int max_q, int max_kv, double decode_share) {
  std::vector<Seq> seqs;
  for (int i = 0; i < n; ++i) {
    const bool decode = rng.uniform(0, 1) < decode_share;
    const int q = decode ? 1 : rng.range(1, max_q);
    seqs.push_back({q, q + rng.range(0, max_kv - q)});  // kv ≥ q: chunked prefill when kv > q
  }
  return seqs;
}

void check_attention_kernels(Harness& h) {
  Rng rng(1234);
  const KvDtype F = KvDtype::F32, B = KvDtype::Bf16;
  std::vector<AttnCase> cases = {
      {"decode GQA4 D128 bf16", shape_of(32, 8, 128, 16), B, random_seqs(rng, 37, 1, 700, 1.0)},
      {"decode GQA4 D128 f32", shape_of(32, 8, 128, 16), F, random_seqs(rng, 37, 1, 700, 1.0)},
      {"mixed prefill+decode GQA1 D64 f32 bs8", shape_of(4, 4, 64, 8), F, random_seqs(rng, 9, 70, 300, 0.5)},
      {"mixed GQA2 D80 bf16 window 40", shape_of(8, 4, 80, 16, 40), B, random_seqs(rng, 7, 90, 260, 0.4)},
      {"mixed GQA8 D256 f32 softcap 30 scale 0.1", shape_of(16, 2, 256, 16, 0, 0.1f, 30.0f), F,
       random_seqs(rng, 6, 40, 200, 0.5)},
      {"mixed GQA8 D256 bf16 window 17 bs32", shape_of(8, 1, 256, 32, 17), B, random_seqs(rng, 5, 50, 150, 0.4)},
      {"mixed GQA16 D96 f32 (two head groups)", shape_of(32, 2, 96, 16), F, random_seqs(rng, 5, 30, 150, 0.4)},
      {"prefill only GQA4 D128 bf16 chunked", shape_of(8, 2, 128, 16), B, {{100, 100}, {64, 200}, {33, 33}}},
      {"single token", shape_of(8, 2, 64, 16), F, {{1, 1}}},
      {"kv_len 1 sequences among others", shape_of(8, 8, 128, 16), B, {{1, 1}, {1, 40}, {1, 1}, {5, 5}, {1, 1}}},
      {"odd head dim D6 f32 (4-byte copies)", shape_of(6, 3, 6, 4), F, random_seqs(rng, 6, 20, 80, 0.5)},
      {"odd head dim D34 bf16 window 9 bs1", shape_of(6, 2, 34, 1, 9), B, random_seqs(rng, 6, 20, 80, 0.5)},
      {"D2 bf16 GQA3", shape_of(6, 2, 2, 16), B, random_seqs(rng, 4, 10, 50, 0.5)},
      {"split decode: 2 seqs kv 3000 D128 bf16", shape_of(32, 8, 128, 16), B, {{1, 3000}, {1, 2100}}},
      {"split decode: 1 seq kv 5000 D80 f32 window 1500", shape_of(16, 4, 80, 16, 1500), F, {{1, 5000}}},
      {"split prefill: q 5 kv 2600 GQA4 D128 f32", shape_of(8, 2, 128, 16), F, {{5, 2600}, {1, 900}}},
      {"q_start[0] > 0, an empty sequence", shape_of(8, 4, 64, 16), B, {{3, 10}, {0, 7}, {1, 30}, {0, 0}}, 5},
  };
  for (auto& c : cases) attention_case(h, c, rng);
}

// RoPE + cache write: q_out and both caches bit for bit (bf16: the CPU's integer rounding, NaN included).
void rope_case(Harness& h, const std::string& name, const AttentionShape& s, KvDtype dtype, int T, Rng& rng) {
  const int D = s.head_dim, R = s.rotary_dim > 0 ? s.rotary_dim : D;
  const int64_t rows = int64_t(((T + s.block_size) / s.block_size + 1) * s.block_size);
  const size_t cache_elems = size_t(rows) * s.num_kv_heads * D, esize = dtype == KvDtype::F32 ? 4 : 2;
  std::vector<float> qkv = rng.vec(size_t(T) * (s.num_heads + 2 * s.num_kv_heads) * D, -3.0f, 3.0f);
  uint32_t nan_bits = 0x7f800001u;  // a signalling NaN in a v element: copied (f32) or quietened (bf16) alike
  std::memcpy(&qkv[size_t(s.num_heads + s.num_kv_heads) * D + 1], &nan_bits, 4);
  std::vector<int32_t> positions(T), slots(T);
  std::vector<int64_t> free_rows(rows);
  std::iota(free_rows.begin(), free_rows.end(), 0);
  for (int64_t i = rows - 1; i > 0; --i) std::swap(free_rows[i], free_rows[rng.next() % (i + 1)]);
  for (int t = 0; t < T; ++t) {
    positions[t] = t == 1 ? 131072 : t == 2 ? 0 : rng.range(0, 131072);
    slots[t] = t % 7 == 3 ? -1 : int32_t(free_rows[t]);
  }
  std::vector<float> inv_freq(R / 2);
  for (int i = 0; i < R / 2; ++i) inv_freq[i] = float(std::pow(500000.0, -2.0 * i / R));
  std::vector<uint8_t> k0(cache_elems * esize), v0(cache_elems * esize);
  for (auto& x : k0) x = uint8_t(rng.next());
  for (auto& x : v0) x = uint8_t(rng.next());
  std::vector<float> q_want(size_t(T) * s.num_heads * D, 5.0f);
  std::vector<uint8_t> k_want = k0, v_want = v0;
  const std::string err = check_rope_and_cache_write(
      int64_t(qkv.size()), T, s, positions.data(), T, R / 2, int64_t(q_want.size()), int64_t(cache_elems),
      int64_t(cache_elems), slots.data(), T);
  if (!err.empty()) {
    h.check("rope " + name, false, "bad case: " + err);
    return;
  }
  rope_and_cache_write(qkv.data(), T, s, positions.data(), inv_freq.data(), q_want.data(), k_want.data(),
                       v_want.data(), dtype, slots.data());

  DeviceBuffer<float> dqkv(qkv), dfreq(inv_freq), dq(std::vector<float>(q_want.size(), 5.0f));
  DeviceBuffer<int32_t> dpos(positions), dslots(slots);
  DeviceBuffer<uint8_t> dk(k0), dv(v0);
  rope_and_cache_write(dqkv.get(), T, s, dpos.get(), dfreq.get(), dq.get(), dk.get(), dv.get(), dtype, dslots.get(), 0);
  LPX_CUDA(cudaGetLastError());
  LPX_CUDA(cudaDeviceSynchronize());
  const std::vector<float> q_got = dq.download();
  const std::vector<uint8_t> k_got = dk.download(), v_got = dv.download();
  size_t q_bad = 0, k_bad = 0, v_bad = 0;
  for (size_t i = 0; i < q_got.size(); ++i) q_bad += std::memcmp(&q_got[i], &q_want[i], 4) != 0;
  for (size_t i = 0; i < k_got.size(); ++i) k_bad += k_got[i] != k_want[i];
  for (size_t i = 0; i < v_got.size(); ++i) v_bad += v_got[i] != v_want[i];
  h.check("rope " + name, q_bad + k_bad + v_bad == 0,
          harness::fmt("bitwise mismatches: q %.0f, k cache bytes %.0f, v cache bytes %.0f", double(q_bad),
                       double(k_bad), double(v_bad)));
}

}  // namespace

void check_attention(Harness& h) {
  Rng rng(99);
  rope_case(h, "Llama D128 f32 cache", shape_of(32, 8, 128, 16), KvDtype::F32, 67, rng);
  rope_case(h, "Llama D128 bf16 cache", shape_of(32, 8, 128, 16), KvDtype::Bf16, 67, rng);
  rope_case(h, "partial rotary R32 of D80 bf16", shape_of(8, 2, 80, 16, 0, 0, 0, 32), KvDtype::Bf16, 40, rng);
  rope_case(h, "partial rotary R16 of D64 f32 bs8", shape_of(4, 4, 64, 8, 0, 0, 0, 16), KvDtype::F32, 23, rng);
  rope_case(h, "D256 bf16 single token", shape_of(8, 4, 256, 16), KvDtype::Bf16, 1, rng);
  check_attention_kernels(h);
}

}  // namespace loraplex::cuda
