// Paged attention driver: splits the batch into (sequence, kv heads, query chunk) tasks and, for every
// (query, head) of a task, runs the ISA's chunk step over the keys in position order (on AVX-512, a prefill task's
// pairs step through each chunk 16 at a time, one per lane, in attention_lanes_avx512.cpp: the same bits).
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention_kernels.h"
#include "loraplex/attention.h"
#include "loraplex/cpu_features.h"
#include "loraplex/thread_pool.h"
#include "ops_kernels.h"

namespace loraplex {

namespace {

struct Task {
  int seq;
  int kv_begin;  // kv heads [kv_begin, kv_end), each with its `group` query heads
  int kv_end;
  int q_begin;  // query indices within the sequence, [q_begin, q_end)
  int q_end;
  double cost;
};

AttentionChunkFn chunk_fn_for(Isa isa) {
  if (isa >= Isa::Avx512) return attention_chunk_avx512;
  if (isa >= Isa::Avx2) return attention_chunk_avx2;
  return attention_chunk_scalar;
}

struct Run {
  const float* q;
  const void* k_cache;
  const void* v_cache;
  KvDtype kv_dtype;
  float* out;
  AttentionShape shape;
  AttentionBatch batch;
  AttentionChunkFn chunk;
  bool lanes;  // prefill tasks use attention_lanes_avx512 (AVX-512, head dims that are multiples of 16)
  void (*widen_bf16)(const uint16_t* src, float* dst, int64_t n);
  float scale;
  int group;  // q heads per kv head

  size_t elem_bytes() const { return kv_dtype == KvDtype::F32 ? 4 : 2; }
  // Cache rows of kv head g at `offset` (in elements), as bytes.
  const char* k_at(int64_t offset) const { return static_cast<const char*>(k_cache) + offset * elem_bytes(); }
  const char* v_at(int64_t offset) const { return static_cast<const char*>(v_cache) + offset * elem_bytes(); }

  int64_t row_of(const int32_t* table, int key) const {
    return int64_t(table[key / shape.block_size]) * shape.block_size + key % shape.block_size;
  }

  // A task reads, for each key, the contiguous slice of its kv heads in the cache row; the next chunk's
  // slices are requested ahead, since blocks need not be adjacent in memory.
  void prefetch_chunk(const int32_t* table, int c0, int last_pos, const Task& t) const {
    const int D = shape.head_dim;
    const int64_t kv_width = int64_t(shape.num_kv_heads) * D;
    const int end = std::min(c0 + kAttentionKeyChunk, last_pos + 1);
    const int bytes = (t.kv_end - t.kv_begin) * D * int(elem_bytes());
    for (int key = c0; key < end; ++key) {
      const int64_t offset = row_of(table, key) * kv_width + int64_t(t.kv_begin) * D;
      const char* k = k_at(offset);
      const char* v = v_at(offset);
      for (int byte = 0; byte < bytes; byte += 64) {
        _mm_prefetch(k + byte, _MM_HINT_T0);
        _mm_prefetch(v + byte, _MM_HINT_T0);
      }
    }
  }

  void task(const Task& t) const {
    const int D = shape.head_dim, hq = shape.num_heads;
    const int64_t kv_width = int64_t(shape.num_kv_heads) * D;
    const int q_len = batch.q_start[t.seq + 1] - batch.q_start[t.seq];
    const int first_pos = batch.kv_len[t.seq] - q_len;  // position of query 0
    const int32_t* table = batch.block_tables + batch.block_table_start[t.seq];
    const int heads = (t.kv_end - t.kv_begin) * group;  // q heads of the task, per query
    const int pairs = (t.q_end - t.q_begin) * heads;

    thread_local std::vector<float> acc_storage;
    thread_local std::vector<AttentionState> states;
    acc_storage.assign(size_t(pairs) * D, 0.0f);
    states.resize(pairs);
    for (int p = 0; p < pairs; ++p) states[p] = {-INFINITY, 0.0f, acc_storage.data() + size_t(p) * D};
    // state of (query qi, kv head g, its i-th q head)
    auto state_of = [&](int qi, int g) { return &states[(qi - t.q_begin) * heads + (g - t.kv_begin) * group]; };

    thread_local std::vector<float> packed;
    packed.resize(size_t(2) * kAttentionKeyChunk * D);
    float* packed_k = packed.data();
    float* packed_v = packed.data() + kAttentionKeyChunk * D;
    const float* k_rows[kAttentionKeyChunk];
    const float* v_rows[kAttentionKeyChunk];
    const int last_pos = first_pos + t.q_end - 1;
    const int window = shape.sliding_window;
    const int lowest_key = window > 0 ? std::max(0, first_pos + t.q_begin - window + 1) : 0;
    int first_live = t.q_begin;  // queries before it have positions below the current chunk
    for (int c0 = lowest_key / kAttentionKeyChunk * kAttentionKeyChunk; c0 <= last_pos; c0 += kAttentionKeyChunk) {
      const int chunk_len = std::min(kAttentionKeyChunk, last_pos + 1 - c0);
      while (first_pos + first_live < c0) ++first_live;
      prefetch_chunk(table, c0 + kAttentionKeyChunk, last_pos, t);
      // With several queries reading the chunk (one query's heads share each load), its rows are copied side
      // by side first: in the cache one head's keys sit Hkv·D floats apart (4 KiB for 8×128) and would fight
      // over the same L1 sets when reread. A bf16 cache is always widened into the packed rows (exactly).
      const bool bf16 = kv_dtype == KvDtype::Bf16;
      const bool pack = bf16 || t.q_end - first_live > 1;
      for (int g = t.kv_begin; g < t.kv_end; ++g) {
        for (int j = 0; j < chunk_len; ++j) {
          const int64_t offset = row_of(table, c0 + j) * kv_width + int64_t(g) * D;
          if (bf16) {
            widen_bf16(reinterpret_cast<const uint16_t*>(k_at(offset)), packed_k + j * D, D);
            widen_bf16(reinterpret_cast<const uint16_t*>(v_at(offset)), packed_v + j * D, D);
          } else if (pack) {
            std::memcpy(packed_k + j * D, k_at(offset), sizeof(float) * D);
            std::memcpy(packed_v + j * D, v_at(offset), sizeof(float) * D);
          }
          k_rows[j] = pack ? packed_k + j * D : reinterpret_cast<const float*>(k_at(offset));
          v_rows[j] = pack ? packed_v + j * D : reinterpret_cast<const float*>(v_at(offset));
        }
        for (int qi = first_live; qi < t.q_end; ++qi) {
          const int n = std::min(chunk_len, first_pos + qi - c0 + 1);
          // Sliding window: keys before p-W+1 are skipped; chunks stay aligned to position 0, so a query's
          // arithmetic still depends only on its own position.
          const int lo = window > 0 ? first_pos + qi - window + 1 : 0;
          const int j0 = std::max(0, lo - c0);
          if (j0 >= n) continue;
          const float* q_heads = q + ((int64_t(batch.q_start[t.seq]) + qi) * hq + int64_t(g) * group) * D;
          chunk(q_heads, group, state_of(qi, g), k_rows + j0, v_rows + j0, n - j0, D, scale, shape.softcap);
        }
      }
    }
    for (int qi = t.q_begin; qi < t.q_end; ++qi) {
      for (int g = t.kv_begin; g < t.kv_end; ++g) {
        float* o = out + ((int64_t(batch.q_start[t.seq]) + qi) * hq + int64_t(g) * group) * D;
        const AttentionState* st = state_of(qi, g);
        for (int h = 0; h < group; ++h)
          for (int d = 0; d < D; ++d) o[h * D + d] = st[h].acc[d] / st[h].sum;
      }
    }
  }

  // A prefill task (one kv head) on AVX-512: its (query, head) pairs, query by query, 16 to a lane group; each
  // chunk's key and value rows are read in place (a bf16 cache's widened once) by every group.
  void task_lanes(const Task& t) const {
    const int D = shape.head_dim, hq = shape.num_heads, g = t.kv_begin;
    const int64_t kv_width = int64_t(shape.num_kv_heads) * D;
    const int q_len = batch.q_start[t.seq + 1] - batch.q_start[t.seq];
    const int first_pos = batch.kv_len[t.seq] - q_len;  // position of query 0
    const int32_t* table = batch.block_tables + batch.block_table_start[t.seq];
    const int window = shape.sliding_window;
    const int pairs = (t.q_end - t.q_begin) * group;
    const int lane_groups = (pairs + kAttentionLanes - 1) / kAttentionLanes;

    thread_local std::vector<float> storage;  // per lane group: qt, then acc
    thread_local std::vector<AttentionLanes> groups;
    storage.resize(size_t(lane_groups) * 2 * D * kAttentionLanes);
    groups.resize(lane_groups);
    auto row_of_pair = [&](int p) {  // q / out row offset of pair p: query t.q_begin + p / group, head p % group
      return ((int64_t(batch.q_start[t.seq]) + t.q_begin + p / group) * hq + int64_t(g) * group + p % group) * D;
    };
    for (int lg = 0; lg < lane_groups; ++lg) {
      AttentionLanes& lanes = groups[lg];
      lanes.qt = storage.data() + size_t(lg) * 2 * D * kAttentionLanes;
      lanes.acc = lanes.qt + size_t(D) * kAttentionLanes;
      const float* q_rows[kAttentionLanes];
      for (int i = 0; i < kAttentionLanes; ++i) {
        const int p = lg * kAttentionLanes + i;
        const int pos = first_pos + t.q_begin + p / group;
        q_rows[i] = p < pairs ? q + row_of_pair(p) : nullptr;
        lanes.first_key[i] = p >= pairs ? INT32_MAX : window > 0 ? std::max(0, pos - window + 1) : 0;
        lanes.last_key[i] = p < pairs ? pos : -1;
      }
      attention_lanes_begin_avx512(lanes, q_rows, D);
    }

    // The task's key and value rows, in place (a bf16 cache's widened once, into `widened`), then each lane group
    // steps through the chunks it sees, its queries and states staying in L1 while the rows come from L2.
    const int last_pos = first_pos + t.q_end - 1;
    const int lowest_key = window > 0 ? std::max(0, first_pos + t.q_begin - window + 1) : 0;
    const int key_begin = lowest_key / kAttentionKeyChunk * kAttentionKeyChunk;
    const int span = last_pos + 1 - key_begin;
    thread_local std::vector<const float*> rows;  // [span] key rows, then [span] value rows
    thread_local std::vector<float> widened;
    rows.resize(size_t(2) * span);
    const bool bf16 = kv_dtype == KvDtype::Bf16;
    if (bf16) widened.resize(size_t(2) * span * D);
    for (int j = 0; j < span; ++j) {
      const int64_t offset = row_of(table, key_begin + j) * kv_width + int64_t(g) * D;
      if (bf16) {
        float* k = widened.data() + size_t(j) * D;
        float* v = widened.data() + size_t(span + j) * D;
        widen_bf16(reinterpret_cast<const uint16_t*>(k_at(offset)), k, D);
        widen_bf16(reinterpret_cast<const uint16_t*>(v_at(offset)), v, D);
        rows[j] = k;
        rows[span + j] = v;
      } else {
        rows[j] = reinterpret_cast<const float*>(k_at(offset));
        rows[span + j] = reinterpret_cast<const float*>(v_at(offset));
      }
    }
    for (int lg = 0; lg < lane_groups; ++lg) {
      const int group_last = std::min(last_pos, first_pos + t.q_begin + ((lg + 1) * kAttentionLanes - 1) / group);
      for (int c0 = key_begin; c0 <= group_last; c0 += kAttentionKeyChunk) {
        const int chunk_len = std::min(kAttentionKeyChunk, group_last + 1 - c0);
        const int j = c0 - key_begin;
        attention_lanes_chunk_avx512(groups[lg], c0, rows.data() + j, rows.data() + span + j, chunk_len, D, scale,
                                     shape.softcap);
      }
    }
    for (int lg = 0; lg < lane_groups; ++lg) {
      float* out_rows[kAttentionLanes];
      for (int i = 0; i < kAttentionLanes; ++i) {
        const int p = lg * kAttentionLanes + i;
        out_rows[i] = p < pairs ? out + row_of_pair(p) : nullptr;
      }
      attention_lanes_finish_avx512(groups[lg], out_rows, D);
    }
  }
};

}  // namespace

void paged_attention(const float* q, const void* k_cache, const void* v_cache, KvDtype kv_dtype, float* out,
                     const AttentionShape& shape, const AttentionBatch& batch) {
  const int group = shape.num_heads / shape.num_kv_heads;
  const int hkv = shape.num_kv_heads;
  // Prefill: tasks of one kv head and up to 64/group queries, so each key chunk (packed once per task) serves
  // about 64 (query, head) pairs (32 packed each chunk twice as often: 1.04-1.09× slower at 4 × 128 tokens; 128
  // no faster than 64). Decode: a task reads whole cache rows (every kv head, which the hardware
  // prefetchers follow), split into kv-head ranges only when there are too few tasks for the pool.
  // The split moves work between tasks, never the arithmetic of a (query, head).
  const int q_chunk = std::max(1, 64 / group);
  int64_t prefill_tasks = 0, decodes = 0;
  for (int s = 0; s < batch.num_seqs; ++s) {
    const int q_len = batch.q_start[s + 1] - batch.q_start[s];
    if (q_len == 1) ++decodes;
    if (q_len > 1) prefill_tasks += int64_t(hkv) * ((q_len + q_chunk - 1) / q_chunk);
  }
  if (prefill_tasks + decodes == 0) return;
  const int64_t wanted = 2 * int64_t(pool_threads());
  const int splits =
      decodes == 0 ? 1 : int(std::clamp<int64_t>((wanted - prefill_tasks + decodes - 1) / decodes, 1, hkv));
  std::vector<Task> tasks;
  for (int s = 0; s < batch.num_seqs; ++s) {
    const int q_len = batch.q_start[s + 1] - batch.q_start[s];
    const int first_pos = batch.kv_len[s] - q_len;
    const int parts = q_len == 1 ? splits : hkv;
    for (int qb = 0; qb < q_len; qb += q_chunk) {
      const int qe = std::min(q_len, qb + q_chunk);
      for (int part = 0; part < parts; ++part) {
        const int g0 = hkv * part / parts, g1 = hkv * (part + 1) / parts;
        const double cost = double(qe - qb) * (g1 - g0) * (first_pos + (qb + qe) * 0.5 + 1);
        tasks.push_back({s, g0, g1, qb, qe, cost});
      }
    }
  }
  // Longest first, so the pool's dynamic scheduling ends with the small tasks.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.cost > b.cost; });
  const float scale = shape.scale > 0.0f ? shape.scale : float(1.0 / std::sqrt(double(shape.head_dim)));
  const Isa isa = active_isa();
  const Run run{q,
                k_cache,
                v_cache,
                kv_dtype,
                out,
                shape,
                batch,
                chunk_fn_for(isa),
                isa >= Isa::Avx512 && attention_lanes_supported(shape.head_dim),
                ops_row_kernels().widen_bf16,
                scale,
                group};
  parallel_for(int64_t(tasks.size()), [&](int64_t i, int) {
    const Task& t = tasks[i];
    const bool prefill = batch.q_start[t.seq + 1] - batch.q_start[t.seq] > 1;
    if (prefill && run.lanes) {
      run.task_lanes(t);
    } else {
      run.task(t);
    }
  });
}

}  // namespace loraplex
