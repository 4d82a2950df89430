// test_elementwise_kernels.cu: every kernel of the CUDA backend but the flash attention
// (embed, add_rmsnorm, add, gather_rows, convert, add_bias, rope_kv, swiglu, the naive attention)
// and the GEMM wrapper, against CPU references in fp64 (fp32 where the kernel's arithmetic is a
// single fp32 operation), over irregular shapes (T = 1, 7, 33; D = 64, 576, 4096) and every
// dtype each launcher instantiates. Every output buffer sits between guard regions filled with a
// sentinel pattern that must stay intact (out-of-bounds writes). Unused KV-cache slots hold NaN:
// no result may depend on them.
//
// Tolerances (|got - ref| <= atol + rtol * |ref|, per output dtype; vLLM's allclose defaults,
// tests/kernels/allclose_default.py, as the floor):
//   exact ops (embed, gather, convert, the residual add): bit-exact against the host conversion
//     of the same fp32 value (one round-to-nearest-even);
//   fp32 outputs:  atol 1e-5, rtol 1e-5 (fp32 reductions of up to 4096 terms in another order);
//   fp16 outputs:  atol 1e-3, rtol 1e-3 (one fp16 rounding is 4.9e-4 relative);
//   bf16 outputs:  atol 1e-3, rtol 1.6e-2 (one bf16 rounding is 3.9e-3 relative, and a bf16 input
//                  rounded in the chain (rope: q/k in bf16) doubles it);
//   attention / GEMM: the same per output dtype, scaled by the magnitudes involved; a GEMM with a
//     16-bit output also gets one ulp of the output's rms (cuBLAS split-K reductions, see there).
#include "../device.cu"
#include "../elementwise.cu"
#include "../embed.cu"
#include "../rmsnorm.cu"
#include "../rope_kv.cu"
#include "../swiglu.cu"
#include "../attention_naive.cu"
#include "test_util.cuh"

#include <algorithm>

namespace {

const int kGuard = 256;  // guard elements on each side of an output buffer
const unsigned char kPattern = 0x5b;

template <class T> llmrt_cuda_dtype dt_of();
template <> llmrt_cuda_dtype dt_of<float>() { return LLMRT_CUDA_F32; }
template <> llmrt_cuda_dtype dt_of<__half>() { return LLMRT_CUDA_F16; }
template <> llmrt_cuda_dtype dt_of<__nv_bfloat16>() { return LLMRT_CUDA_BF16; }
template <class T> const char *name_of() {
  return dt_of<T>() == LLMRT_CUDA_F32 ? "f32" : dt_of<T>() == LLMRT_CUDA_F16 ? "f16" : "bf16";
}
template <class T> float to_f(T x) { return llmrt_to_f32(x); }
template <class T> T from_f(float x) { return llmrt_from_f32<T>(x); }
template <class T> double atol_of() { return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-5 : 1e-3; }
template <class T> double rtol_of() {
  return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-5 : dt_of<T>() == LLMRT_CUDA_F16 ? 1e-3 : 1.6e-2;
}
template <class T> bool same_bits(T a, T b) { return memcmp(&a, &b, sizeof(T)) == 0; }

// A device buffer of n elements between two guard regions of kGuard elements (sentinel bytes).
template <class T> struct Guarded {
  T *base = nullptr;
  size_t n = 0;
  explicit Guarded(size_t count) : n(count) {
    base = dev_alloc<T>(n + 2 * kGuard);
    CUDA_OK(cudaMemset(base, kPattern, (n + 2 * kGuard) * sizeof(T)));
  }
  Guarded(const Guarded &) = delete;
  ~Guarded() { cudaFree(base); }
  T *p() const { return base + kGuard; }
  void set(const std::vector<T> &h) { CUDA_OK(cudaMemcpy(p(), h.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> get() const { return to_host(p(), n); }
  bool guards_ok() const {
    std::vector<unsigned char> all((n + 2 * kGuard) * sizeof(T));
    CUDA_OK(cudaMemcpy(all.data(), base, all.size(), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < kGuard * sizeof(T); i++)
      if (all[i] != kPattern || all[all.size() - 1 - i] != kPattern) return false;
    return true;
  }
};

template <class T> std::vector<T> random_vec(Rng &r, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<T> v(n);
  for (auto &x : v) x = from_f<T>(r.uniform(lo, hi));
  return v;
}

// Tolerance check over a whole output; reports the worst element.
template <class T>
void check_close(const char *what, const std::vector<T> &got, const std::vector<double> &ref, double atol,
                 double rtol) {
  size_t worst = 0, bad = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); i++) {
    double g = to_f(got[i]), e = std::fabs(g - ref[i]), lim = atol + rtol * std::fabs(ref[i]);
    if (!(e <= lim)) bad++;
    double ex = std::isnan(e) ? 1e300 : e - lim;
    if (ex > worst_excess) worst_excess = ex, worst = i;
  }
  CHECKF(bad == 0, "%s: %zu of %zu outside atol %g rtol %g; worst [%zu] got %g ref %g", what, bad, got.size(), atol,
         rtol, worst, (double)to_f(got[worst]), ref[worst]);
}

// ---- embed ------------------------------------------------------------------------------------

template <class TW, class TO> void test_embed(int T, int64_t D) {
  Rng r(T * 131 + D);
  const int V = 50;
  std::vector<TW> table = random_vec<TW>(r, (size_t)V * D, -2, 2);
  std::vector<int32_t> tok(T);
  for (auto &t : tok) t = r.range(0, V - 1);
  tok[0] = V - 1;  // the last row
  TW *d_table = to_dev(table);
  int32_t *d_tok = to_dev(tok);
  Guarded<TO> out((size_t)T * D);
  CUDA_OK((cudaError_t)llmrt_cuda_embed(nullptr, out.p(), dt_of<TO>(), d_table, dt_of<TW>(), d_tok, T, D));
  KERNEL_OK();
  std::vector<TO> got = out.get();
  size_t bad = 0;
  for (int t = 0; t < T; t++)
    for (int64_t i = 0; i < D; i++)
      bad += !same_bits(got[t * D + i], from_f<TO>(to_f(table[tok[t] * D + i])));
  CHECKF(bad == 0, "embed %s->%s T=%d D=%lld: %zu elements differ", name_of<TW>(), name_of<TO>(), T, (long long)D, bad);
  CHECKF(out.guards_ok(), "embed %s->%s T=%d D=%lld: guard overwritten", name_of<TW>(), name_of<TO>(), T, (long long)D);
  cudaFree(d_table);
  cudaFree(d_tok);
}

// ---- add_rmsnorm / rmsnorm / add ----------------------------------------------------------------

template <class TD, class TO> void test_rmsnorm(int T, int64_t D, bool with_delta) {
  Rng r(T * 7 + D + with_delta);
  std::vector<float> x = random_vec<float>(r, (size_t)T * D, -3, 3), w = random_vec<float>(r, D, 0.5f, 1.5f);
  std::vector<TD> delta = random_vec<TD>(r, (size_t)T * D);
  Guarded<float> dx((size_t)T * D);
  dx.set(x);
  Guarded<TO> out((size_t)T * D);
  float *d_w = to_dev(w);
  TD *d_delta = to_dev(delta);
  const float eps = 1e-5f;
  CUDA_OK((cudaError_t)llmrt_cuda_add_rmsnorm(nullptr, out.p(), dt_of<TO>(), dx.p(), with_delta ? d_delta : nullptr,
                                              dt_of<TD>(), d_w, T, D, eps));
  KERNEL_OK();
  std::vector<float> xn(x);
  if (with_delta)
    for (size_t i = 0; i < xn.size(); i++) xn[i] = x[i] + to_f(delta[i]);  // one fp32 add, as the kernel
  std::vector<double> ref((size_t)T * D);
  for (int t = 0; t < T; t++) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)xn[t * D + i] * xn[t * D + i];
    double inv = 1.0 / std::sqrt(ss / (double)D + eps);
    for (int64_t i = 0; i < D; i++) ref[t * D + i] = w[i] * (xn[t * D + i] * inv);
  }
  char what[128];
  snprintf(what, sizeof what, "%s %s->%s T=%d D=%lld", with_delta ? "add_rmsnorm" : "rmsnorm", name_of<TD>(),
           name_of<TO>(), T, (long long)D);
  check_close(what, out.get(), ref, atol_of<TO>(), rtol_of<TO>());
  std::vector<float> xg = dx.get();
  CHECKF(memcmp(xg.data(), xn.data(), xn.size() * 4) == 0, "%s: residual x += delta not exact", what);
  CHECKF(out.guards_ok() && dx.guards_ok(), "%s: guard overwritten", what);
  cudaFree(d_w);
  cudaFree(d_delta);
}

template <class TD> void test_add(int64_t n) {
  Rng r(n);
  std::vector<float> x = random_vec<float>(r, n, -100, 100);
  std::vector<TD> d = random_vec<TD>(r, n);
  Guarded<float> dx(n);
  dx.set(x);
  TD *d_d = to_dev(d);
  CUDA_OK((cudaError_t)llmrt_cuda_add(nullptr, dx.p(), d_d, dt_of<TD>(), n));
  KERNEL_OK();
  std::vector<float> got = dx.get();
  size_t bad = 0;
  for (int64_t i = 0; i < n; i++) bad += got[i] != x[i] + to_f(d[i]);
  CHECKF(bad == 0 && dx.guards_ok(), "add %s n=%lld: %zu differ or guard overwritten", name_of<TD>(), (long long)n, bad);
  cudaFree(d_d);
}

// ---- gather_rows, convert, add_bias --------------------------------------------------------------

template <class T> void test_gather(int T_, int n_rows, int64_t D) {
  Rng r(T_ * 3 + n_rows + D);
  std::vector<T> x = random_vec<T>(r, (size_t)T_ * D);
  std::vector<int32_t> rows(n_rows);
  for (auto &v : rows) v = r.range(0, T_ - 1);
  rows[n_rows - 1] = T_ - 1;
  T *d_x = to_dev(x);
  int32_t *d_rows = to_dev(rows);
  Guarded<T> out((size_t)n_rows * D);
  CUDA_OK((cudaError_t)llmrt_cuda_gather_rows(nullptr, dt_of<T>(), out.p(), d_x, d_rows, n_rows, D));
  KERNEL_OK();
  std::vector<T> got = out.get();
  size_t bad = 0;
  for (int i = 0; i < n_rows; i++)
    for (int64_t k = 0; k < D; k++) bad += !same_bits(got[i * D + k], x[rows[i] * D + k]);
  CHECKF(bad == 0 && out.guards_ok(), "gather %s T=%d rows=%d D=%lld: %zu differ or guard overwritten", name_of<T>(),
         T_, n_rows, (long long)D, bad);
  cudaFree(d_x);
  cudaFree(d_rows);
}

template <class TI, class TO> void test_convert(int64_t n) {
  Rng r(n * 5);
  std::vector<TI> in = random_vec<TI>(r, n, -70000, 70000);  // fp16 overflow to inf included
  for (int64_t i = 0; i < n; i += 3) in[i] = from_f<TI>(r.uniform(-1e-3f, 1e-3f));  // small values, subnormals
  TI *d_in = to_dev(in);
  Guarded<TO> out(n);
  CUDA_OK((cudaError_t)llmrt_cuda_convert(nullptr, out.p(), dt_of<TO>(), d_in, dt_of<TI>(), n));
  KERNEL_OK();
  std::vector<TO> got = out.get();
  size_t bad = 0;
  for (int64_t i = 0; i < n; i++) bad += !same_bits(got[i], from_f<TO>(to_f(in[i])));
  CHECKF(bad == 0 && out.guards_ok(), "convert %s->%s n=%lld: %zu differ or guard overwritten", name_of<TI>(),
         name_of<TO>(), (long long)n, bad);
  cudaFree(d_in);
}

template <class T> void test_bias(int rows, int64_t N) {
  Rng r(rows + N);
  std::vector<T> o = random_vec<T>(r, (size_t)rows * N);
  std::vector<float> b = random_vec<float>(r, N);
  Guarded<T> out((size_t)rows * N);
  out.set(o);
  float *d_b = to_dev(b);
  CUDA_OK((cudaError_t)llmrt_cuda_add_bias(nullptr, out.p(), dt_of<T>(), d_b, rows, N));
  KERNEL_OK();
  std::vector<T> got = out.get();
  size_t bad = 0;
  for (int i = 0; i < rows; i++)
    for (int64_t c = 0; c < N; c++) bad += !same_bits(got[i * N + c], from_f<T>(to_f(o[i * N + c]) + b[c]));
  CHECKF(bad == 0 && out.guards_ok(), "add_bias %s rows=%d N=%lld: %zu differ or guard overwritten", name_of<T>(), rows,
         (long long)N, bad);
  cudaFree(d_b);
}

// ---- swiglu --------------------------------------------------------------------------------------

template <class T> void test_swiglu(int T_, int64_t F, bool in_place) {
  Rng r(T_ * 11 + F);
  const size_t n = (size_t)T_ * F;
  std::vector<T> g = random_vec<T>(r, n, -8, 8), u = random_vec<T>(r, n, -2, 2);
  g[0] = from_f<T>(-90.0f);  // exp(90) overflows fp32: silu -> -0
  Guarded<T> dg(n), du(n), out(n);
  dg.set(g);
  du.set(u);
  T *dst = in_place ? dg.p() : out.p();
  CUDA_OK((cudaError_t)llmrt_cuda_swiglu(nullptr, dt_of<T>(), dst, dg.p(), du.p(), (int64_t)n));
  KERNEL_OK();
  std::vector<double> ref(n);
  for (size_t i = 0; i < n; i++) {
    double x = to_f(g[i]);
    ref[i] = x / (1.0 + std::exp(-x)) * to_f(u[i]);
  }
  char what[96];
  snprintf(what, sizeof what, "swiglu %s T=%d F=%lld%s", name_of<T>(), T_, (long long)F, in_place ? " in place" : "");
  check_close(what, in_place ? dg.get() : out.get(), ref, atol_of<T>(), rtol_of<T>());
  CHECKF(dg.guards_ok() && du.guards_ok() && out.guards_ok(), "%s: guard overwritten", what);
}

// ---- rope + KV write -----------------------------------------------------------------------------

template <class T> void test_rope_kv(int T_, int Hq, int Hkv, int hd) {
  Rng r(T_ * 17 + Hq * 3 + hd);
  const int half = hd / 2, n_slots = 3 * T_ + 5;
  const int64_t qw = (int64_t)Hq * hd, kw = (int64_t)Hkv * hd;
  std::vector<T> q = random_vec<T>(r, (size_t)T_ * qw), k = random_vec<T>(r, (size_t)T_ * kw),
                 v = random_vec<T>(r, (size_t)T_ * kw);
  std::vector<int32_t> pos(T_);
  for (auto &p : pos) p = r.range(0, 8191);  // long-context angles: thousands of radians
  pos[0] = 0;
  std::vector<int64_t> slots(n_slots);
  for (int i = 0; i < n_slots; i++) slots[i] = i;
  for (int i = n_slots - 1; i > 0; i--) std::swap(slots[i], slots[r.range(0, i)]);
  slots.resize(T_);
  std::vector<float> inv(half);  // HF default, theta 500000 (llama3); scaled variants are host-side
  for (int i = 0; i < half; i++) inv[i] = (float)(1.0 / std::pow(500000.0, 2.0 * i / hd));
  Guarded<T> dq((size_t)T_ * qw), dk((size_t)T_ * kw), dv((size_t)T_ * kw);
  dq.set(q);
  dk.set(k);
  dv.set(v);
  // caches: every slot NaN first; only the batch's slots may change
  std::vector<T> nan_cache((size_t)n_slots * kw, from_f<T>(NAN));
  Guarded<T> kc((size_t)n_slots * kw), vc((size_t)n_slots * kw);
  kc.set(nan_cache);
  vc.set(nan_cache);
  int32_t *d_pos = to_dev(pos);
  int64_t *d_slots = to_dev(slots);
  float *d_inv = to_dev(inv);
  CUDA_OK((cudaError_t)llmrt_cuda_rope_kv(nullptr, dt_of<T>(), dq.p(), dk.p(), dv.p(), kc.p(), vc.p(), d_pos, d_slots,
                                          d_inv, T_, Hq, Hkv, hd));
  KERNEL_OK();
  std::vector<double> rq((size_t)T_ * qw), rk((size_t)T_ * kw);
  auto rotate = [&](const std::vector<T> &src, std::vector<double> &dst, int t, int64_t w, int h) {
    for (int i = 0; i < half; i++) {
      float angle = (float)pos[t] * inv[i];  // fp32, as the kernel (and HF) compute it
      double c = std::cos((double)angle), s = std::sin((double)angle);
      double x1 = to_f(src[t * w + h * hd + i]), x2 = to_f(src[t * w + h * hd + i + half]);
      dst[t * w + h * hd + i] = x1 * c - x2 * s;
      dst[t * w + h * hd + i + half] = x2 * c + x1 * s;
    }
  };
  for (int t = 0; t < T_; t++) {
    for (int h = 0; h < Hq; h++) rotate(q, rq, t, qw, h);
    for (int h = 0; h < Hkv; h++) rotate(k, rk, t, kw, h);
  }
  char what[96];
  snprintf(what, sizeof what, "rope_kv %s T=%d Hq=%d Hkv=%d hd=%d", name_of<T>(), T_, Hq, Hkv, hd);
  // sincosf of angles ~8000 rad: ~1 ulp of the angle's cos/sin, well inside the dtype tolerance
  check_close(what, dq.get(), rq, atol_of<T>(), rtol_of<T>());
  std::vector<T> gk = dk.get();
  check_close(what, gk, rk, atol_of<T>(), rtol_of<T>());
  std::vector<T> gkc = kc.get(), gvc = vc.get();
  size_t bad = 0, touched = 0;
  std::vector<int> owner(n_slots, -1);
  for (int t = 0; t < T_; t++) owner[slots[t]] = t;
  for (int sl = 0; sl < n_slots; sl++)
    for (int64_t i = 0; i < kw; i++) {
      T kcv = gkc[sl * kw + i], vcv = gvc[sl * kw + i];
      if (owner[sl] < 0) {
        touched += !std::isnan(to_f(kcv)) || !std::isnan(to_f(vcv));
      } else {  // the cache holds exactly the rotated k and the given v
        bad += !same_bits(kcv, gk[owner[sl] * kw + i]) || !same_bits(vcv, v[owner[sl] * kw + i]);
      }
    }
  CHECKF(bad == 0, "%s: %zu cache values differ from k/v", what, bad);
  CHECKF(touched == 0, "%s: %zu values written to slots of no token", what, touched);
  CHECKF(dq.guards_ok() && dk.guards_ok() && kc.guards_ok() && vc.guards_ok(), "%s: guard overwritten", what);
  cudaFree(d_pos);
  cudaFree(d_slots);
  cudaFree(d_inv);
}

// ---- naive attention -----------------------------------------------------------------------------

// Random paged problem: n_seqs sequences of random lengths with scrambled blocks; the batch holds
// the last q_len tokens of each sequence (interleaved); unowned slots hold NaN.
template <class T> void test_attention(int n_seqs, int T_, int Hq, int Hkv, int hd, int bs) {
  Rng r(n_seqs * 1000 + T_ * 10 + hd + bs);
  std::vector<int> len(n_seqs), qlen(n_seqs);
  int per = (T_ + n_seqs - 1) / n_seqs, left = T_;
  for (int s = 0; s < n_seqs; s++) {
    qlen[s] = std::min(per, left);
    left -= qlen[s];
    len[s] = qlen[s] + r.range(0, 70);
  }
  int max_blocks = 0;
  for (int s = 0; s < n_seqs; s++) max_blocks = std::max(max_blocks, (len[s] + bs - 1) / bs);
  const int n_blocks = n_seqs * max_blocks + 3;
  std::vector<int> ids(n_blocks);
  for (int i = 0; i < n_blocks; i++) ids[i] = i;
  for (int i = n_blocks - 1; i > 0; i--) std::swap(ids[i], ids[r.range(0, i)]);
  std::vector<int32_t> table((size_t)n_seqs * max_blocks, -1);
  int next = 0;
  for (int s = 0; s < n_seqs; s++)
    for (int b = 0; b < (len[s] + bs - 1) / bs; b++) table[s * max_blocks + b] = ids[next++];
  const int64_t kw = (int64_t)Hkv * hd, qw = (int64_t)Hq * hd;
  std::vector<T> kc((size_t)n_blocks * bs * kw, from_f<T>(NAN)), vc(kc);
  for (int s = 0; s < n_seqs; s++)
    for (int p = 0; p < len[s]; p++) {
      int64_t slot = (int64_t)table[s * max_blocks + p / bs] * bs + p % bs;
      for (int64_t i = 0; i < kw; i++) {
        kc[slot * kw + i] = from_f<T>(r.uniform(-2, 2));
        vc[slot * kw + i] = from_f<T>(r.uniform(-1, 1));
      }
    }
  std::vector<int32_t> pos, seq;  // interleaved batch
  for (int k = 0; (int)pos.size() < T_; k++)
    for (int s = 0; s < n_seqs; s++)
      if (k < qlen[s]) {
        pos.push_back(len[s] - qlen[s] + k);
        seq.push_back(s);
      }
  std::vector<T> q = random_vec<T>(r, (size_t)T_ * qw, -2, 2);
  const float scale = 1.0f / std::sqrt((float)hd);
  T *d_q = to_dev(q), *d_kc = to_dev(kc), *d_vc = to_dev(vc);
  int32_t *d_pos = to_dev(pos), *d_seq = to_dev(seq), *d_table = to_dev(table);
  Guarded<T> out((size_t)T_ * qw);
  CUDA_OK((cudaError_t)llmrt_cuda_attention_naive(nullptr, dt_of<T>(), out.p(), d_q, d_kc, d_vc, d_pos, d_seq, d_table,
                                                  max_blocks, T_, Hq, Hkv, hd, bs, scale, 0));
  KERNEL_OK();
  std::vector<double> ref((size_t)T_ * qw);
  for (int t = 0; t < T_; t++)
    for (int h = 0; h < Hq; h++) {
      int kvh = h / (Hq / Hkv), s = seq[t];
      std::vector<double> sc(pos[t] + 1);
      double mx = -1e300, sum = 0;
      for (int p = 0; p <= pos[t]; p++) {
        int64_t slot = (int64_t)table[s * max_blocks + p / bs] * bs + p % bs;
        double d = 0;
        for (int i = 0; i < hd; i++) d += (double)to_f(q[t * qw + h * hd + i]) * to_f(kc[slot * kw + kvh * hd + i]);
        sc[p] = d * scale;
        mx = std::max(mx, sc[p]);
      }
      for (int p = 0; p <= pos[t]; p++) sum += sc[p] = std::exp(sc[p] - mx);
      for (int i = 0; i < hd; i++) {
        double o = 0;
        for (int p = 0; p <= pos[t]; p++) {
          int64_t slot = (int64_t)table[s * max_blocks + p / bs] * bs + p % bs;
          o += sc[p] / sum * to_f(vc[slot * kw + kvh * hd + i]);
        }
        ref[t * qw + h * hd + i] = o;
      }
    }
  char what[128];
  snprintf(what, sizeof what, "attention_naive %s seqs=%d T=%d Hq=%d Hkv=%d hd=%d bs=%d", name_of<T>(), n_seqs, T_, Hq,
           Hkv, hd, bs);
  // outputs are convex combinations of |v| <= 1: absolute tolerances; fp32 softmax + sums
  check_close(what, out.get(), ref, dt_of<T>() == LLMRT_CUDA_F32 ? 2e-5 : atol_of<T>() * 2, rtol_of<T>());
  CHECKF(out.guards_ok(), "%s: guard overwritten", what);
  cudaFree(d_q);
  cudaFree(d_kc);
  cudaFree(d_vc);
  cudaFree(d_pos);
  cudaFree(d_seq);
  cudaFree(d_table);
}

// ---- GEMM wrapper (cuBLAS, row-major out = x · Wᵀ) ------------------------------------------------

template <class T> void test_gemm(llmrt_cuda_dev *dev, int rows, int N, int K, bool f32_out) {
  Rng r(rows * 7 + N * 3 + K);
  std::vector<T> x = random_vec<T>(r, (size_t)rows * K), w = random_vec<T>(r, (size_t)N * K);
  T *d_x = to_dev(x), *d_w = to_dev(w);
  char what[96];
  snprintf(what, sizeof what, "gemm %s rows=%d N=%d K=%d out %s", name_of<T>(), rows, N, K,
           f32_out ? "f32" : name_of<T>());
  std::vector<double> ref((size_t)rows * N), mag((size_t)rows * N);
  for (int i = 0; i < rows; i++)
    for (int n = 0; n < N; n++) {
      double acc = 0, m = 0;
      for (int k = 0; k < K; k++) {
        double p = (double)to_f(x[i * K + k]) * to_f(w[n * K + k]);
        acc += p;
        m += std::fabs(p);
      }
      ref[i * N + n] = acc;
      mag[i * N + n] = m;
    }
  // fp32 accumulation of K products: |err| <= K * 2^-24 * sum|products| (loose bound: 1e-6 * mag)
  auto run = [&](auto *out_p, llmrt_cuda_dtype out_t) {
    CHECKF(llmrt_cuda_gemm(dev, out_p, out_t, d_x, d_w, dt_of<T>(), rows, N, K) == LLMRT_CUDA_OK, "%s: %s", what,
           llmrt_cuda_dev_message(dev));
    KERNEL_OK();
  };
  if (f32_out) {
    Guarded<float> out((size_t)rows * N);
    run(out.p(), LLMRT_CUDA_F32);
    std::vector<float> got = out.get();
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); i++) bad += !(std::fabs(got[i] - ref[i]) <= 1e-5 + 1e-6 * mag[i] * 8);
    CHECKF(bad == 0 && out.guards_ok(), "%s: %zu outside tolerance or guard overwritten", what, bad);
  } else {
    Guarded<T> out((size_t)rows * N);
    run(out.p(), dt_of<T>());
    // cuBLAS may split K and reduce the partial sums in the output type (seen on an H100: rows 7,
    // K 576, an element cancelling to -0.15 off by 0.0039, one fp16 ulp of the typical |out| ~ 8):
    // allow one ulp of the output's rms on top of the element's own rounding.
    double rms = 0;
    for (double v : ref) rms += v * v;
    rms = std::sqrt(rms / (double)ref.size());
    const double ulp = dt_of<T>() == LLMRT_CUDA_F16 ? 1.0 / 1024 : 1.0 / 128;
    std::vector<T> got = out.get();
    size_t bad = 0, worst = 0;
    double worst_ex = -1e300;
    for (size_t i = 0; i < got.size(); i++) {
      double e = std::fabs(to_f(got[i]) - ref[i]),
             lim = atol_of<T>() + rtol_of<T>() * std::fabs(ref[i]) + ulp * rms + 8e-6 * mag[i];
      bad += !(e <= lim);
      if (e - lim > worst_ex) worst_ex = e - lim, worst = i;
    }
    CHECKF(bad == 0 && out.guards_ok(), "%s: %zu outside tolerance or guard overwritten; worst [%zu] got %.6g ref %.6g sum|products| %.4g",
           what, bad, worst, (double)to_f(got[worst]), ref[worst], mag[worst]);
  }
  cudaFree(d_x);
  cudaFree(d_w);
}

template <class TO> void embed_all(int T, int64_t D) {
  test_embed<float, TO>(T, D);
  test_embed<__half, TO>(T, D);
  test_embed<__nv_bfloat16, TO>(T, D);
}

template <class TO> void rmsnorm_all(int T, int64_t D) {
  test_rmsnorm<__half, TO>(T, D, true);
  test_rmsnorm<__nv_bfloat16, TO>(T, D, true);
  test_rmsnorm<float, TO>(T, D, true);
  test_rmsnorm<__half, TO>(T, D, false);
}

template <class TI> void convert_all(int64_t n) {
  test_convert<TI, float>(n);
  test_convert<TI, __half>(n);
  test_convert<TI, __nv_bfloat16>(n);
}

}  // namespace

int main() {
  require_device();
  const int Ts[] = {1, 7, 33};
  for (int T : Ts) {
    for (int64_t D : {64, 576}) {
      embed_all<float>(T, D);
      embed_all<__half>(T, D);
      embed_all<__nv_bfloat16>(T, D);
    }
    for (int64_t D : {64, 576, 4096}) {
      rmsnorm_all<__half>(T, D);
      rmsnorm_all<__nv_bfloat16>(T, D);
      rmsnorm_all<float>(T, D);
    }
    test_gather<__half>(T, (T + 1) / 2, 576);
    test_gather<__nv_bfloat16>(T, T, 64);
    test_gather<float>(T, 3, 100);
    for (int64_t F : {64, 1536}) {
      test_swiglu<__half>(T, F, true);
      test_swiglu<__nv_bfloat16>(T, F, false);
      test_swiglu<float>(T, F, false);
    }
    test_rope_kv<__half>(T, 4, 2, 16);
    test_rope_kv<__half>(T, 9, 3, 64);
    test_rope_kv<__nv_bfloat16>(T, 8, 8, 128);
    test_rope_kv<float>(T, 4, 1, 64);
  }
  test_add<__half>(1);
  test_add<__half>(7 * 576);
  test_add<__nv_bfloat16>(33 * 64);
  test_add<float>(1000);
  convert_all<float>(33 * 577);
  convert_all<__half>(1);
  convert_all<__nv_bfloat16>(7 * 64);
  test_bias<__half>(7, 576);
  test_bias<__nv_bfloat16>(1, 64);
  test_bias<float>(33, 100);

  // attention: decode (one token per sequence), prefill chunks, GQA ratios, odd block sizes
  test_attention<__half>(1, 1, 4, 2, 16, 16);
  test_attention<__half>(7, 7, 9, 3, 64, 16);
  test_attention<__half>(3, 33, 8, 2, 128, 5);
  test_attention<__nv_bfloat16>(2, 7, 4, 4, 64, 3);
  test_attention<float>(4, 33, 4, 2, 16, 16);

  llmrt_cuda_dev *dev = nullptr;
  char msg[256];
  CHECKF(llmrt_cuda_dev_create(0, &dev, msg, sizeof msg) == LLMRT_CUDA_OK, "dev_create: %s", msg);
  if (dev) {
    // the GEMM runs on the device layer's stream: KERNEL_OK's device sync covers it
    test_gemm<__half>(dev, 1, 64, 64, false);
    test_gemm<__half>(dev, 7, 100, 576, false);
    test_gemm<__half>(dev, 33, 67, 64, true);
    test_gemm<__nv_bfloat16>(dev, 7, 64, 100, false);
    test_gemm<__nv_bfloat16>(dev, 1, 33, 576, true);
    test_gemm<float>(dev, 33, 17, 64, false);
    // unsupported dtype combination: a clean INVALID, nothing launched
    CHECK(llmrt_cuda_gemm(dev, nullptr, LLMRT_CUDA_F16, nullptr, nullptr, LLMRT_CUDA_BF16, 1, 1, 1) ==
          LLMRT_CUDA_ERR_INVALID);
    llmrt_cuda_dev_destroy(dev);
  }
  // closed dispatch: an unknown dtype launches nothing
  CHECK(llmrt_cuda_swiglu(nullptr, (llmrt_cuda_dtype)7, nullptr, nullptr, nullptr, 4) == (int)cudaErrorInvalidValue);
  CHECK(llmrt_cuda_attention_naive(nullptr, LLMRT_CUDA_F16, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, 1, 1, 4, 4, 512, 16, 1.0f, 0) == (int)cudaErrorInvalidValue);
  return test_summary("test_elementwise_kernels");
}
