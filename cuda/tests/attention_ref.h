// attention_ref.h: shared pieces of test_attention_prefill.cu and test_attention_decode.cu:
// a random paged-KV problem (random block tables, NaN in every slot no sequence owns, unused
// block-table entries pointing far outside the pool), its upload, an fp64 reference that gathers
// K/V through the block table, and the accuracy criterion.
//
// Accuracy criterion (FlashAttention's error ratio, tests/test_flash_attn.py):
//     max|out - ref| <= 2 * max|out_lp - ref| + 2^-14
// ref    = attention in fp64 from the same fp16/bf16 inputs;
// out_lp = the same fp64 computation with the two roundings any low-precision flash kernel must
//          make: P = exp(s - max) rounded to the element type before P·V (the mma A operand), and
//          the output rounded to the element type.
// Why this and not NMSE < 1e-5: the bound scales with what the data allow (peaked vs flat
// softmax, fp16 vs bf16: bf16's 8-bit mantissa gives ~8x fp16's error and gets ~8x the bound
// without another constant), and it is a max-norm: one wrongly masked or missing key in a
// 300-token context moves an output by ~1/300 in one row, which a max-norm 2-3e-4 bound catches and
// an NMSE over thousands of outputs does not. The 2^-14 (a quarter of an fp16 ulp at 1) only
// covers cases where out_lp happens to be exact (e.g. a 1-token context, where out == v).
#ifndef LLMRT_CUDA_TESTS_ATTENTION_REF_H
#define LLMRT_CUDA_TESTS_ATTENTION_REF_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../attention.h"

#define ATT_CHECK_CUDA(x)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

namespace attn_test {

// ---- elements ---------------------------------------------------------------------------------
inline float elem_to_f(uint16_t bits, int dtype) {
    if (dtype == LLMRT_CUDA_ATTN_BF16) {
        uint32_t u = (uint32_t)bits << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    __half h;
    memcpy((void *)&h, &bits, 2);
    return __half2float(h);
}
inline uint16_t f_to_elem(float f, int dtype) {
    uint16_t b;
    if (dtype == LLMRT_CUDA_ATTN_BF16) {
        __nv_bfloat16 h = __float2bfloat16_rn(f);
        memcpy(&b, (void *)&h, 2);
    } else {
        __half h = __float2half_rn(f);
        memcpy(&b, (void *)&h, 2);
    }
    return b;
}
inline double round_elem(double x, int dtype) {
    return elem_to_f(f_to_elem((float)x, dtype), dtype);
}
// The spacing of the element type at |x| (one ulp).
inline double ulp_at(double x, int dtype) {
    const int e = std::ilogb(x > 0 ? x : 1e-30);
    return std::ldexp(1.0, e - (dtype == LLMRT_CUDA_ATTN_BF16 ? 7 : 10));
}
inline uint16_t nan_elem(int dtype) {
    return dtype == LLMRT_CUDA_ATTN_BF16 ? 0x7fc0 : 0x7e00;
}
const uint16_t kSentinel =
    0xa5a5; // out guard rows: a normal number no kernel result equals by luck

// ---- deterministic random numbers ---------------------------------------------------------------
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
    uint64_t next() { // splitmix64
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uni() {
        return (double)(next() >> 11) * (1.0 / 9007199254740992.0);
    } // [0, 1)
    float sym(float a) {
        return (float)((2 * uni() - 1) * a);
    } // [-a, a)
    int below(int n) {
        return (int)(next() % (uint64_t)n);
    }
};

// ---- a paged problem --------------------------------------------------------------------------
struct Seq {
    int q_len, past;
};

struct Problem {
    // shape
    int Hq = 0, Hkv = 0, hd = 0, bs = 16, dtype = LLMRT_CUDA_ATTN_F16;
    float amp = 2.5f; // q and k uniform in [-amp, amp): scores std ~ amp^2 / 3 (peaked softmax)
    int window = 0;   // sliding window W > 0: position p sees (p - W, p]; the blocks wholly below
                      // every query's window are "freed": their slots hold NaN, never to be read
    std::vector<Seq> seqs;
    // host copies (element bits)
    int T = 0, n_blocks = 0, max_blocks = 0, n_rows = 0;
    std::vector<uint16_t> q, kc, vc;
    std::vector<int32_t> btab, q_start, q_len, ctx, slot;
    std::vector<char> owned; // [n_blocks * bs]: slot holds a sequence's token
    // device
    static const int kGuardRows = 3; // out rows before and after the T real ones
    uint16_t *d_q = nullptr, *d_out_alloc = nullptr, *d_k = nullptr, *d_v = nullptr;
    int32_t *d_btab = nullptr, *d_q_start = nullptr, *d_q_len = nullptr, *d_ctx = nullptr,
            *d_slot = nullptr;

    size_t row_elems() const {
        return (size_t)Hq * hd;
    }
    uint16_t *d_out() const {
        return d_out_alloc + kGuardRows * row_elems();
    }

    // fast: K/V values come from a 4096-entry random table (benchmarks: GBs of cache)
    void build(uint64_t seed, bool fast = false) {
        Rng rng(seed);
        const int n = (int)seqs.size();
        T = 0;
        int need = 0, maxb = 1;
        for (const Seq &s : seqs) {
            q_start.push_back(T);
            q_len.push_back(s.q_len);
            ctx.push_back(s.past + s.q_len);
            T += s.q_len;
            const int nb = (s.past + s.q_len + bs - 1) / bs;
            need += nb;
            if (nb > maxb) maxb = nb;
        }
        n_blocks = need + 5;   // a few blocks nobody owns
        max_blocks = maxb + 2; // and table entries past every sequence's end
        n_rows = n + 2;        // and block-table rows nobody uses
        // random block ids and table rows
        std::vector<int> ids(n_blocks), rows(n_rows);
        for (int i = 0; i < n_blocks; i++)
            ids[i] = i;
        for (int i = 0; i < n_rows; i++)
            rows[i] = i;
        for (int i = n_blocks - 1; i > 0; i--)
            std::swap(ids[i], ids[rng.below(i + 1)]);
        for (int i = n_rows - 1; i > 0; i--)
            std::swap(rows[i], rows[rng.below(i + 1)]);
        // unused entries: a block id far outside the pool, so that reading one faults
        btab.assign((size_t)n_rows * max_blocks, 0x3fffffff);
        int next = 0;
        for (int i = 0; i < n; i++) {
            slot.push_back(rows[i]);
            const int nb = (ctx[i] + bs - 1) / bs;
            for (int b = 0; b < nb; b++)
                btab[(size_t)rows[i] * max_blocks + b] = ids[next++];
        }
        // caches: NaN everywhere, random values where a sequence has a token
        const size_t tok = (size_t)Hkv * hd;
        kc.assign((size_t)n_blocks * bs * tok, nan_elem(dtype));
        vc = kc;
        owned.assign((size_t)n_blocks * bs, 0);
        std::vector<uint16_t> tk(4096), tv(4096);
        for (int e = 0; e < 4096; e++) {
            tk[e] = f_to_elem(rng.sym(amp), dtype);
            tv[e] = f_to_elem(rng.sym(1.0f), dtype);
        }
        for (int i = 0; i < n; i++)
            for (int p = 0; p < ctx[i]; p++) {
                const int64_t sl = slot_of(i, p);
                owned[sl] = 1;
                const size_t off = fast ? (size_t)(rng.next() & 4095) : 0;
                for (size_t e = 0; e < tok; e++) {
                    kc[sl * tok + e] =
                        fast ? tk[(off + e * 7) & 4095] : f_to_elem(rng.sym(amp), dtype);
                    vc[sl * tok + e] =
                        fast ? tv[(off + e * 5) & 4095] : f_to_elem(rng.sym(1.0f), dtype);
                }
            }
        // sliding window: a sequence's blocks below its first query's window, as the engine
        // frees them (here: NaN, unowned, so that a kernel that reads one fails)
        for (int i = 0; i < n && window > 0; i++) {
            const int p0 = ctx[i] - q_len[i], lo = p0 >= window ? p0 - window + 1 : 0;
            for (int p = 0; p < lo / bs * bs; p++) {
                const int64_t sl = slot_of(i, p);
                owned[sl] = 0;
                for (size_t e = 0; e < tok; e++)
                    kc[sl * tok + e] = vc[sl * tok + e] = nan_elem(dtype);
            }
        }
        q.resize((size_t)T * row_elems());
        for (auto &x : q)
            x = f_to_elem(rng.sym(amp), dtype);
    }

    int64_t slot_of(int i, int p) const {
        return (int64_t)btab[(size_t)slot[i] * max_blocks + p / bs] * bs + p % bs;
    }

    // Refills every slot no sequence owns with `bits` (host and device).
    void refill_unowned(uint16_t bits) {
        const size_t tok = (size_t)Hkv * hd;
        for (size_t sl = 0; sl < owned.size(); sl++)
            if (!owned[sl])
                for (size_t e = 0; e < tok; e++)
                    kc[sl * tok + e] = vc[sl * tok + e] = bits;
        ATT_CHECK_CUDA(cudaMemcpy(d_k, kc.data(), kc.size() * 2, cudaMemcpyHostToDevice));
        ATT_CHECK_CUDA(cudaMemcpy(d_v, vc.data(), vc.size() * 2, cudaMemcpyHostToDevice));
    }

    template <class P> static P *upload(const std::vector<P> &v) {
        P *d = nullptr;
        ATT_CHECK_CUDA(cudaMalloc((void **)&d, v.size() * sizeof(P) + 16));
        ATT_CHECK_CUDA(cudaMemcpy(d, v.data(), v.size() * sizeof(P), cudaMemcpyHostToDevice));
        return d;
    }
    void to_device() {
        d_q = upload(q);
        d_k = upload(kc);
        d_v = upload(vc);
        d_btab = upload(btab);
        d_q_start = upload(q_start);
        d_q_len = upload(q_len);
        d_ctx = upload(ctx);
        d_slot = upload(slot);
        std::vector<uint16_t> o((size_t)(T + 2 * kGuardRows) * row_elems(), kSentinel);
        d_out_alloc = upload(o);
    }
    void reset_out() {
        std::vector<uint16_t> o((size_t)(T + 2 * kGuardRows) * row_elems(), kSentinel);
        ATT_CHECK_CUDA(cudaMemcpy(d_out_alloc, o.data(), o.size() * 2, cudaMemcpyHostToDevice));
    }
    void free_device() {
        void *ps[] = {d_q, d_out_alloc, d_k, d_v, d_btab, d_q_start, d_q_len, d_ctx, d_slot};
        for (void *p : ps)
            cudaFree(p);
    }

    llmrt_cuda_attn_args args() const {
        llmrt_cuda_attn_args a;
        memset(&a, 0, sizeof a);
        a.q = d_q;
        a.out = d_out();
        a.k_cache = d_k;
        a.v_cache = d_v;
        a.block_tables = d_btab;
        a.q_start = d_q_start;
        a.q_len = d_q_len;
        a.ctx_len = d_ctx;
        a.seq_slot = d_slot;
        a.n_seqs = (int32_t)seqs.size();
        a.n_tokens = T;
        a.n_heads = Hq;
        a.n_kv_heads = Hkv;
        a.head_dim = hd;
        a.block_size = bs;
        a.max_blocks = max_blocks;
        int mc = 0;
        for (int c : ctx)
            mc = c > mc ? c : mc;
        a.max_ctx_len = mc;
        a.scale = 1.0f / sqrtf((float)hd);
        a.dtype = dtype;
        a.window = window;
        return a;
    }

    // The whole out allocation (guards included), after a device sync.
    std::vector<uint16_t> download_out() const {
        std::vector<uint16_t> o((size_t)(T + 2 * kGuardRows) * row_elems());
        ATT_CHECK_CUDA(cudaDeviceSynchronize());
        ATT_CHECK_CUDA(cudaMemcpy(o.data(), d_out_alloc, o.size() * 2, cudaMemcpyDeviceToHost));
        return o;
    }

    // fp64 reference (ref) and the low-precision-rounded one (lp), [T, Hq, hd] each.
    void reference(std::vector<double> &ref, std::vector<double> &lp) const {
        ref.assign((size_t)T * row_elems(), 0.0);
        lp = ref;
        for (size_t i = 0; i < seqs.size(); i++)
            for (int j = 0; j < q_len[i]; j++)
                for (int h = 0; h < Hq; h++) {
                    const size_t at = ((size_t)(q_start[i] + j) * Hq + h) * hd;
                    reference_row((int)i, j, h, &ref[at], &lp[at]);
                }
    }

    // Token j of sequence i, query head h: ref[hd] and lp[hd].
    void reference_row(int i, int j, int h, double *ref, double *lp) const {
        const double scale = 1.0 / std::sqrt((double)hd);
        const size_t tok = (size_t)Hkv * hd;
        const int kvh = h / (Hq / Hkv), pos = ctx[i] - q_len[i] + j, t = q_start[i] + j;
        const int lo = window > 0 && pos >= window ? pos - window + 1 : 0;
        std::vector<double> qd(hd), s((size_t)pos + 1);
        for (int d = 0; d < hd; d++)
            qd[d] = elem_to_f(q[((size_t)t * Hq + h) * hd + d], dtype);
        double mx = -INFINITY;
        for (int k = lo; k <= pos; k++) {
            const uint16_t *kr = &kc[(size_t)slot_of(i, k) * tok + kvh * hd];
            double acc = 0;
            for (int d = 0; d < hd; d++)
                acc += qd[d] * elem_to_f(kr[d], dtype);
            s[k] = acc * scale;
            mx = s[k] > mx ? s[k] : mx;
        }
        double l = 0;
        for (int d = 0; d < hd; d++)
            ref[d] = lp[d] = 0;
        for (int k = lo; k <= pos; k++) {
            const double p = std::exp(s[k] - mx), pr = round_elem(p, dtype);
            l += p;
            const uint16_t *vr = &vc[(size_t)slot_of(i, k) * tok + kvh * hd];
            for (int d = 0; d < hd; d++) {
                const double v = elem_to_f(vr[d], dtype);
                ref[d] += p * v;
                lp[d] += pr * v;
            }
        }
        for (int d = 0; d < hd; d++) {
            ref[d] /= l;
            lp[d] = round_elem(lp[d] / l, dtype);
        }
    }
};

// ---- checks -----------------------------------------------------------------------------------
struct Verdict {
    double err = 0, err_lp = 0, nmse = 0, bound = 0;
    bool ok = false, guards_ok = true;
};

// Compares the out allocation `o` (from download_out) with the reference; checks the guards.
inline Verdict judge(const Problem &pb, const std::vector<uint16_t> &o,
                     const std::vector<double> &ref, const std::vector<double> &lp) {
    Verdict v;
    const size_t g = (size_t)Problem::kGuardRows * pb.row_elems(), n = ref.size();
    for (size_t i = 0; i < g; i++)
        if (o[i] != kSentinel || o[g + n + i] != kSentinel) v.guards_ok = false;
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = elem_to_f(o[g + i], pb.dtype);
        const double e = std::fabs(x - ref[i]);
        if (!(e <= v.err)) v.err = std::isnan(e) ? INFINITY : e; // NaN counts as infinitely wrong
        const double el = std::fabs(lp[i] - ref[i]);
        v.err_lp = el > v.err_lp ? el : v.err_lp;
        se += (x - ref[i]) * (x - ref[i]);
        sr += ref[i] * ref[i];
    }
    v.nmse = sr > 0 ? se / sr : se;
    v.bound = 2 * v.err_lp + 1.0 / 16384;
    v.ok = v.err <= v.bound && v.guards_ok;
    return v;
}

// max |a - b| over the real out rows of two downloads; INFINITY if any is NaN.
inline double max_diff(const Problem &pb, const std::vector<uint16_t> &a,
                       const std::vector<uint16_t> &b) {
    const size_t g = (size_t)Problem::kGuardRows * pb.row_elems(),
                 n = (size_t)pb.T * pb.row_elems();
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        const double e =
            std::fabs((double)elem_to_f(a[g + i], pb.dtype) - elem_to_f(b[g + i], pb.dtype));
        if (!(e <= m)) m = std::isnan(e) ? INFINITY : e;
    }
    return m;
}

inline const char *dtype_name(int dtype) {
    return dtype == LLMRT_CUDA_ATTN_BF16 ? "bf16" : "f16";
}

// Mean milliseconds of fn() (launches on the default stream) over `iters` runs, after 3 warm-ups.
template <class F> double time_ms(F fn, int iters) {
    for (int i = 0; i < 3; i++)
        fn();
    cudaEvent_t a, b;
    ATT_CHECK_CUDA(cudaEventCreate(&a));
    ATT_CHECK_CUDA(cudaEventCreate(&b));
    ATT_CHECK_CUDA(cudaEventRecord(a, 0));
    for (int i = 0; i < iters; i++)
        fn();
    ATT_CHECK_CUDA(cudaEventRecord(b, 0));
    ATT_CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    ATT_CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms / iters;
}

// Checks `n` random (token, head) rows of a benchmark's output against the reference.
inline bool spot_check(const Problem &pb, int n, uint64_t seed, double *worst_ratio) {
    std::vector<uint16_t> o = pb.download_out();
    Rng rng(seed);
    std::vector<double> ref(pb.hd), lp(pb.hd);
    bool ok = true;
    *worst_ratio = 0;
    const size_t g = (size_t)Problem::kGuardRows * pb.row_elems();
    for (int k = 0; k < n; k++) {
        const int i = rng.below((int)pb.seqs.size()), j = rng.below(pb.q_len[i]),
                  h = rng.below(pb.Hq);
        pb.reference_row(i, j, h, ref.data(), lp.data());
        double err = 0, err_lp = 0;
        for (int d = 0; d < pb.hd; d++) {
            const size_t at = g + ((size_t)(pb.q_start[i] + j) * pb.Hq + h) * pb.hd + d;
            const double e = std::fabs(elem_to_f(o[at], pb.dtype) - ref[d]);
            err = !(e <= err) ? (std::isnan(e) ? INFINITY : e) : err;
            err_lp = std::fmax(err_lp, std::fabs(lp[d] - ref[d]));
        }
        const double bound = 2 * err_lp + 1.0 / 16384;
        ok &= err <= bound;
        *worst_ratio = std::fmax(*worst_ratio, err / bound);
    }
    return ok;
}

// 77 (ctest SKIP_RETURN_CODE) when there is no device to run on (an nvcc build without a GPU).
inline void skip_without_device() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("no CUDA device: skipped\n");
        exit(77);
    }
}

} // namespace attn_test

#endif
