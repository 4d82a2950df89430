// test_lora.cu: the batched multi-LoRA kernels (lora.cu) against an fp64 reference computed here,
// over irregular shapes (k, n = 1, 13, 72, 200, 577, 1100: not multiples of 8/16/32; k over 1, 2
// and 3 shrink splits of 512), ranks 1, 7, 16, 33,
// 64 (and 1000 at the end), batches of T = 1, 3, 17, 70 rows mixing slots, rows without an
// adapter (-1), rows naming an empty slot or a slot past the table, and runs of 1..26 rows (tiles
// of every class: 16, 4 and 1 rows), in fp16 and bf16 (the tensor-core shrink) and fp32 (the FMA
// shrink).
//
// Checks
//   - shrink: the sum of the split partials tmp[t, :, j] against sum_k x·A in fp64 from the stored
//     (rounded) x and A;
//   - apply: out[t, c] against out0 + scale · sum_j (x·A_j) · B_cj in fp64 from the stored inputs;
//     rows without a filled slot are bit-identical to their input; guard regions around out stay
//     intact (no write past the buffer);
//   - batch invariance: the GEMV path (every row alone), the tiled path and a run of one row by
//     itself give bit-identical rows (lora.h: a fixed per-output order).
//
// Tolerances (|got - ref| <= rel · |ref| + acc · mag; mag = the same sum over |terms|):
//   tmp (fp32 output):  rel 0, acc 1e-5 (fp32 sums of up to 512 products in another order:
//                       <= ~512 · 2^-24 ≈ 3e-5 worst case, ~1e-6 typical);
//   out fp32:           rel 1e-6, acc 1e-5;
//   out fp16:           rel 2^-11 (one rounding of the output to fp16) + acc 1e-4 (the fp32
//                       shrink/expand sums; x, A, B enter as the stored fp16 values, exactly);
//   out bf16:           rel 2^-8 (one bf16 rounding) + acc 1e-4.
#include "../lora.cu"
#include "test_util.cuh"

#include <algorithm>

namespace {

template <class T> llmrt_cuda_dtype dt_of();
template <> llmrt_cuda_dtype dt_of<float>() { return LLMRT_CUDA_F32; }
template <> llmrt_cuda_dtype dt_of<__half>() { return LLMRT_CUDA_F16; }
template <> llmrt_cuda_dtype dt_of<__nv_bfloat16>() { return LLMRT_CUDA_BF16; }
template <class T> const char *name_of() {
  return dt_of<T>() == LLMRT_CUDA_F32 ? "f32" : dt_of<T>() == LLMRT_CUDA_F16 ? "f16" : "bf16";
}
template <class T> double rel_of() {
  return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-6 : dt_of<T>() == LLMRT_CUDA_F16 ? 1.0 / 2048 : 1.0 / 256;
}
template <class T> double acc_of() { return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-5 : 1e-4; }
template <class T> double to_d(T v) { return (double)llmrt_to_f32(v); }
template <class T> bool same_bits(T a, T b) { return memcmp(&a, &b, sizeof(T)) == 0; }

const int kGuard = 64;
const unsigned char kPattern = 0x5b;

template <class T> std::vector<T> random_vec(Rng &r, size_t n, float lo, float hi) {
  std::vector<T> v(n);
  for (auto &e : v) e = llmrt_from_f32<T>(r.uniform(lo, hi));
  return v;
}

// One table: slot s holds A [rank_s, k] and B [n, rank_s] on the device (host copies for the
// reference), descriptors in device memory.
template <class T> struct Table {
  int64_t n, k;
  std::vector<int> ranks;
  std::vector<std::vector<T>> a, b;
  std::vector<void *> bufs;
  llmrt_cuda_lora_slot *slots = nullptr;
  int max_rank = 0;
  Table(Rng &r, int64_t n_, int64_t k_, const std::vector<int> &ranks_) : n(n_), k(k_), ranks(ranks_) {
    std::vector<llmrt_cuda_lora_slot> d(ranks.size());
    for (size_t s = 0; s < ranks.size(); s++) {
      const int rk = ranks[s];
      max_rank = std::max(max_rank, rk);
      // scaled so that every stage stays O(1): x·A ~ 1, tmp·B ~ 1
      const float sa = 1.7f / sqrtf((float)k), sb = 1.7f / sqrtf((float)std::max(rk, 1));
      a.push_back(random_vec<T>(r, (size_t)rk * k, -sa, sa));
      b.push_back(random_vec<T>(r, (size_t)n * rk, -sb, sb));
      d[s] = {nullptr, nullptr, rk, 0};
      if (rk > 0) {
        T *pa = to_dev(a[s]), *pb = to_dev(b[s]);
        bufs.push_back(pa);
        bufs.push_back(pb);
        d[s].a = pa;
        d[s].b = pb;
      }
    }
    slots = to_dev(d);
  }
  ~Table() {
    for (void *p : bufs) cudaFree(p);
    cudaFree(slots);
  }
  bool filled(int s) const { return s >= 0 && s < (int)ranks.size() && ranks[s] > 0; }
};

struct Batch {
  std::vector<int32_t> slot;
  std::vector<float> scale;
};

// Runs shrink + expand over rows [0, T) of x / out0 (host) with the given tiling; returns out and
// (when tmp_out) the tmp rows. tiled: llmrt_cuda_lora_tiles' tiles, else the GEMV path.
template <class T>
std::vector<T> run(const Table<T> &tb, const Batch &bt, const std::vector<T> &x, const std::vector<T> &out0,
                   bool tiled, int ld_tmp, std::vector<float> *tmp_out, bool *guards_ok) {
  const int32_t Tn = (int32_t)bt.slot.size();
  T *out_base = dev_alloc<T>(out0.size() + 2 * kGuard);
  CUDA_OK(cudaMemset(out_base, kPattern, (out0.size() + 2 * kGuard) * sizeof(T)));
  T *out = out_base + kGuard;
  CUDA_OK(cudaMemcpy(out, out0.data(), out0.size() * sizeof(T), cudaMemcpyHostToDevice));
  T *xd = to_dev(x);
  const size_t tmp_n = (size_t)Tn * llmrt_cuda_lora_splits(tb.k) * ld_tmp;
  float *tmp = dev_alloc<float>(tmp_n);
  CUDA_OK(cudaMemset(tmp, 0xff, tmp_n * sizeof(float)));  // NaN: unwritten
  int32_t *slot_d = to_dev(bt.slot);
  float *scale_d = to_dev(bt.scale);
  std::vector<int32_t> tr(Tn), tl(Tn);
  llmrt_cuda_lora_args a = {};
  a.dtype = dt_of<T>();
  a.out = out;
  a.x = xd;
  a.n = tb.n;
  a.k = tb.k;
  a.n_rows = Tn;
  a.slots = tb.slots;
  a.n_slots = (int32_t)tb.ranks.size();
  a.max_rank = tb.max_rank;
  a.tmp = tmp;
  a.ld_tmp = ld_tmp;
  a.row_slot = slot_d;
  a.row_scale = scale_d;
  int32_t *tr_d = nullptr, *tl_d = nullptr;
  if (tiled) {
    const int32_t nt = llmrt_cuda_lora_tiles(bt.slot.data(), Tn, tr.data(), tl.data(), a.n_class);
    tr.resize(std::max(nt, 1));
    tl.resize(std::max(nt, 1));
    tr_d = to_dev(tr);
    tl_d = to_dev(tl);
    a.tile_row = tr_d;
    a.tile_len = tl_d;
  }
  CHECK(llmrt_cuda_lora_shrink(nullptr, &a) == 0);
  KERNEL_OK();
  if (tmp_out) *tmp_out = to_host(tmp, tmp_n);
  CHECK(llmrt_cuda_lora_expand(nullptr, &a) == 0);
  KERNEL_OK();
  std::vector<T> got = to_host(out, out0.size());
  std::vector<unsigned char> all((out0.size() + 2 * kGuard) * sizeof(T));
  CUDA_OK(cudaMemcpy(all.data(), out_base, all.size(), cudaMemcpyDeviceToHost));
  bool ok = true;
  for (size_t i = 0; i < kGuard * sizeof(T); i++)
    ok = ok && all[i] == kPattern && all[all.size() - 1 - i] == kPattern;
  *guards_ok = ok;
  cudaFree(out_base);
  cudaFree(xd);
  cudaFree(tmp);
  cudaFree(slot_d);
  cudaFree(scale_d);
  cudaFree(tr_d);
  cudaFree(tl_d);
  return got;
}

template <class T> void check_case(Rng &r, const Table<T> &tb, const Batch &bt, const char *what) {
  const int32_t Tn = (int32_t)bt.slot.size();
  const int64_t n = tb.n, k = tb.k;
  const int ld_tmp = tb.max_rank + 3;  // a stride that is not the rank
  std::vector<T> x = random_vec<T>(r, (size_t)Tn * k, -1.0f, 1.0f);
  std::vector<T> out0 = random_vec<T>(r, (size_t)Tn * n, -1.0f, 1.0f);

  std::vector<float> tmp;
  bool guards = false;
  std::vector<T> gemv = run(tb, bt, x, out0, false, ld_tmp, &tmp, &guards);
  CHECKF(guards, "%s %s: GEMV path wrote outside out", what, name_of<T>());
  std::vector<T> tiled = run(tb, bt, x, out0, true, ld_tmp, nullptr, &guards);
  CHECKF(guards, "%s %s: tiled path wrote outside out", what, name_of<T>());

  double worst_tmp = 0, worst_out = 0;
  int bad_tmp = 0, bad_out = 0, untouched_bad = 0, variant = 0;
  for (int32_t t = 0; t < Tn; t++) {
    const int s = bt.slot[t];
    for (int64_t c = 0; c < n; c++)
      if (!same_bits(gemv[t * n + c], tiled[t * n + c])) variant++;
    if (!tb.filled(s)) {
      for (int64_t c = 0; c < n; c++)
        untouched_bad += !same_bits(gemv[t * n + c], out0[t * n + c]) +
                         !same_bits(tiled[t * n + c], out0[t * n + c]);
      continue;
    }
    const int rk = tb.ranks[s];
    std::vector<double> h(rk), hmag(rk);
    for (int j = 0; j < rk; j++) {
      double acc = 0, mag = 0;
      for (int64_t i = 0; i < k; i++) {
        const double p = to_d(x[t * k + i]) * to_d(tb.a[s][j * k + i]);
        acc += p;
        mag += fabs(p);
      }
      h[j] = acc;
      hmag[j] = mag;
      const int sp = llmrt_cuda_lora_splits(k);
      double got = 0;  // the split partials (each a fp32 sum) in split order
      for (int p = 0; p < sp; p++) got += tmp[((size_t)t * sp + p) * ld_tmp + j];
      const double err = fabs(got - acc);
      worst_tmp = std::max(worst_tmp, err / (mag + 1e-30));
      if (!(err <= 1e-5 * mag + 1e-30)) bad_tmp++;
    }
    const double sc = bt.scale[t];
    for (int64_t c = 0; c < n; c++) {
      double acc = 0, mag = 0;
      for (int j = 0; j < rk; j++) {
        const double bv = to_d(tb.b[s][c * rk + j]);
        acc += h[j] * bv;
        mag += hmag[j] * fabs(bv);
      }
      const double o0 = to_d(out0[t * n + c]);
      const double ref = o0 + sc * acc, m = fabs(o0) + fabs(sc) * mag;
      const double tol = rel_of<T>() * fabs(ref) + acc_of<T>() * m;
      for (const std::vector<T> *o : {&gemv, &tiled}) {  // each path against the reference
        const double got = to_d((*o)[t * n + c]), err = fabs(got - ref);
        worst_out = std::max(worst_out, err / tol);
        if (!(err <= tol)) {
          if (bad_out < 3)
            fprintf(stderr, "  %s %s (%s path): out[%d, %lld] = %.6g, want %.6g (tol %.3g)\n", what,
                    name_of<T>(), o == &gemv ? "GEMV" : "tiled", t, (long long)c, got, ref, tol);
          bad_out++;
        }
      }
    }
  }
  CHECKF(bad_tmp == 0, "%s %s: %d tmp values off (worst %.3g of the magnitude)", what, name_of<T>(), bad_tmp,
         worst_tmp);
  CHECKF(bad_out == 0, "%s %s: %d out values off (worst %.3g x tol)", what, name_of<T>(), bad_out, worst_out);
  CHECKF(untouched_bad == 0, "%s %s: %d values of rows without an adapter changed", what, name_of<T>(),
         untouched_bad);
  CHECKF(variant == 0, "%s %s: %d values differ between the GEMV and the tiled path", what, name_of<T>(),
         variant);

  // a row by itself gives the bits it has in the batch (its result depends on no other row)
  for (int32_t t : {0, Tn / 2, Tn - 1}) {
    Batch one = {{bt.slot[t]}, {bt.scale[t]}};
    std::vector<T> x1(x.begin() + t * k, x.begin() + (t + 1) * k);
    std::vector<T> o1(out0.begin() + t * n, out0.begin() + (t + 1) * n);
    std::vector<T> alone = run(tb, one, x1, o1, true, ld_tmp, nullptr, &guards);
    int diff = 0;
    for (int64_t c = 0; c < n; c++) diff += !same_bits(alone[c], gemv[t * n + c]);
    CHECKF(diff == 0, "%s %s: row %d alone differs from the batch in %d values", what, name_of<T>(), t, diff);
  }
  printf("  %-28s %-4s T=%-3d k=%-4lld n=%-4lld worst tmp %.2e of magnitude, out %.2f of tol\n", what,
         name_of<T>(), Tn, (long long)k, (long long)n, worst_tmp, worst_out);
}

Batch make_batch(Rng &r, const std::vector<std::pair<int, int>> &runs) {  // (slot, length)
  Batch b;
  for (auto &p : runs)
    for (int i = 0; i < p.second; i++) {
      b.slot.push_back(p.first);
      b.scale.push_back(r.uniform(-2.0f, 2.0f));
    }
  return b;
}

template <class T> void test_dtype(bool all_shapes) {
  Rng r(7 + (unsigned)dt_of<T>());
  // slots: ranks 1, 7, 16, 64, empty, 33; slot 7 lies past the table (a row naming it is untouched)
  const std::vector<int> ranks = {1, 7, 16, 64, 0, 33};
  const Batch b1 = make_batch(r, {{2, 1}});
  const Batch b3 = make_batch(r, {{0, 1}, {-1, 1}, {3, 1}});
  const Batch b17 = make_batch(r, {{1, 5}, {-1, 2}, {4, 3}, {5, 2}, {3, 5}});
  const Batch b70 = make_batch(r, {{3, 20}, {0, 3}, {-1, 1}, {2, 17}, {1, 1}, {7, 2}, {5, 4}, {3, 22}});
  {
    Table<T> tb(r, 200, 72, ranks);
    check_case(r, tb, b1, "decode, one row");
    check_case(r, tb, b70, "prefill + decode mix");
  }
  if (!all_shapes) return;
  {
    Table<T> tb(r, 577, 13, ranks);
    check_case(r, tb, b3, "decode rows, -1 between");
    check_case(r, tb, b17, "segments, empty slot");
  }
  {
    Table<T> tb(r, 13, 577, ranks);
    check_case(r, tb, b17, "segments, k = 577");
    check_case(r, tb, b70, "prefill + decode mix");
  }
  {
    Table<T> tb(r, 13, 1100, ranks);  // 3 k splits, the last partial
    check_case(r, tb, b17, "segments, k = 1100");
  }
  {
    Table<T> tb(r, 1, 1, ranks);  // the smallest projection
    check_case(r, tb, b17, "k = n = 1");
  }
}

// The largest ranks: one slot of rank 1000 (63 rank groups, 32 rank chunks with a partial last)
// beside one of rank 2.
void test_big_rank() {
  Rng r(99);
  Table<__half> tb(r, 30, 40, {2, 1000});
  check_case(r, tb, make_batch(r, {{1, 2}, {0, 1}, {1, 1}}), "rank 1000");
}

void test_tiles() {
  const std::vector<int32_t> slot = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  // 18 rows of 3
                                     -1, 1, 2, 2, 2, 0, 0, 0, 0, 0, -1, -1};
  std::vector<int32_t> tr(slot.size()), tl(slot.size());
  int32_t nc[3];
  const int32_t n = llmrt_cuda_lora_tiles(slot.data(), (int32_t)slot.size(), tr.data(), tl.data(), nc);
  // 3: 16 + 2 rows; 1: one row; 2: 3 rows; 0: 5 rows
  CHECK(n == 5 && nc[0] == 2 && nc[1] == 2 && nc[2] == 1);
  CHECK(tr[0] == 0 && tl[0] == 16 && tr[1] == 23 && tl[1] == 5);
  CHECK(tr[2] == 16 && tl[2] == 2 && tr[3] == 20 && tl[3] == 3);
  CHECK(tr[4] == 19 && tl[4] == 1);
  const std::vector<int32_t> none = {-1, -1};
  CHECK(llmrt_cuda_lora_tiles(none.data(), 2, tr.data(), tl.data(), nc) == 0 && nc[0] + nc[1] + nc[2] == 0);
}

// Arguments no kernel takes are refused before anything is launched.
void test_invalid() {
  llmrt_cuda_lora_args a = {};
  CHECK(llmrt_cuda_lora_apply(nullptr, &a) == (int)cudaErrorInvalidValue);  // no pointers
  CHECK(llmrt_cuda_lora_apply(nullptr, nullptr) == (int)cudaErrorInvalidValue);
  float *f = dev_alloc<float>(64);
  a.dtype = LLMRT_CUDA_F16;
  a.out = f;
  a.x = f;
  a.n = a.k = 8;
  a.n_rows = 2;
  a.slots = (const llmrt_cuda_lora_slot *)f;
  a.n_slots = 1;
  a.max_rank = 16;
  a.tmp = f;
  a.ld_tmp = 16;
  a.row_slot = (const int32_t *)f;
  a.row_scale = f;
  llmrt_cuda_lora_args b = a;
  b.ld_tmp = 15;  // a row of tmp shorter than the rank
  CHECK(llmrt_cuda_lora_shrink(nullptr, &b) == (int)cudaErrorInvalidValue);
  b = a;
  b.max_rank = LLMRT_CUDA_LORA_MAX_RANK + 1;
  b.ld_tmp = b.max_rank;
  CHECK(llmrt_cuda_lora_expand(nullptr, &b) == (int)cudaErrorInvalidValue);
  b = a;
  b.dtype = (llmrt_cuda_dtype)7;
  CHECK(llmrt_cuda_lora_apply(nullptr, &b) == (int)cudaErrorInvalidValue);
  b = a;
  b.tile_row = (const int32_t *)f;  // tiles without their lengths
  CHECK(llmrt_cuda_lora_apply(nullptr, &b) == (int)cudaErrorInvalidValue);
  b.tile_len = (const int32_t *)f;
  b.n_class[1] = 3;  // more tiles than rows
  CHECK(llmrt_cuda_lora_apply(nullptr, &b) == (int)cudaErrorInvalidValue);
  b = a;
  b.n_rows = 0;  // an empty batch: nothing to do
  CHECK(llmrt_cuda_lora_apply(nullptr, &b) == 0);
  cudaFree(f);
}

}  // namespace

int main() {
  require_device();
  test_tiles();
  test_invalid();
  test_dtype<__half>(true);
  test_dtype<__nv_bfloat16>(true);
  test_dtype<float>(false);
  test_big_rank();
  return test_summary("test_lora");
}
