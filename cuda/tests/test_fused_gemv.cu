// test_fused_gemv.cu: the fused decode matmul (fused_gemv.cu) against an fp64 reference and
// against the unfused kernels it replaces, over irregular shapes (K of one 16-byte vector up to
// several shared-memory chunks, N not a multiple of the CTA's 16 rows, M = 1..8) and every dtype:
//   1. plain input: out = round_t(x · Wᵀ) (+ bias, rounded again) against fp64:
//      |got - ref| <= rtol_t * |ref| + 1e-5 * sum|x * w| (one rounding to t; fp32 sums of up to
//      4104 terms in another order);
//   2. the fusions are bit-identical to the unfused sequence (the same expressions and rounding
//      points by construction, fused_gemv.h):
//        RMSNORM  == add_rmsnorm (rmsnorm.cu, no delta) then the plain kernel,
//        SWIGLU   == swiglu (swiglu.cu) then the plain kernel,
//        residual == the plain kernel then add (elementwise.cu),
//        grouped (3 weights of different N) == three single launches,
//        row m of an M-row launch == the same row launched alone (batch invariance);
//   3. refused arguments (M 9, K not whole vectors, a residual with 2 weights, a misaligned
//      weight) launch nothing; outputs are followed by a sentinel tail that must stay intact.
#include "../elementwise.cu"
#include "../fused_gemv.cu"
#include "../rmsnorm.cu"
#include "../swiglu.cu"
#include "test_util.cuh"

namespace {

template <class T> llmrt_cuda_dtype dt_of();
template <> llmrt_cuda_dtype dt_of<float>() {
    return LLMRT_CUDA_F32;
}
template <> llmrt_cuda_dtype dt_of<__half>() {
    return LLMRT_CUDA_F16;
}
template <> llmrt_cuda_dtype dt_of<__nv_bfloat16>() {
    return LLMRT_CUDA_BF16;
}
template <class T> const char *name_of() {
    return dt_of<T>() == LLMRT_CUDA_F32 ? "f32" : dt_of<T>() == LLMRT_CUDA_F16 ? "f16" : "bf16";
}
template <class T> double rtol_of() {
    return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-6 : dt_of<T>() == LLMRT_CUDA_F16 ? 1e-3 : 8e-3;
}

const int kTail = 64; // sentinel elements after every output
const unsigned char kPattern = 0x5b;

template <class T> std::vector<T> random_t(Rng &rng, size_t n, float lo, float hi) {
    std::vector<T> v(n);
    for (auto &e : v)
        e = llmrt_from_f32<T>(rng.uniform(lo, hi));
    return v;
}

// A device output of n elements plus a sentinel tail.
template <class T> T *out_alloc(size_t n) {
    T *p = dev_alloc<T>(n + kTail);
    CUDA_OK(cudaMemset(p, kPattern, (n + kTail) * sizeof(T)));
    return p;
}
template <class T> bool tail_intact(const T *p, size_t n) {
    std::vector<unsigned char> h((size_t)kTail * sizeof(T));
    CUDA_OK(cudaMemcpy(h.data(), p + n, h.size(), cudaMemcpyDeviceToHost));
    for (unsigned char b : h)
        if (b != kPattern) return false;
    return true;
}
template <class T> bool same(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

struct Shape {
    int M;
    int64_t K;
    int64_t N[3];
    bool bias;
};

template <class T> void run_shape(const Shape &s, Rng &rng) {
    const int M = s.M;
    const int64_t K = s.K;
    const llmrt_cuda_dtype t = dt_of<T>();
    char what[160];
    snprintf(what, sizeof what, "%s M %d K %lld N %lld/%lld/%lld%s", name_of<T>(), M, (long long)K,
             (long long)s.N[0], (long long)s.N[1], (long long)s.N[2], s.bias ? " bias" : "");

    // inputs: activations, a residual, gate/up, norm weight; three weights with biases
    std::vector<T> xh = random_t<T>(rng, (size_t)M * K, -1.0f, 1.0f);
    std::vector<float> resid((size_t)M * K), normw(K);
    for (auto &e : resid)
        e = rng.uniform(-3.0f, 3.0f);
    for (auto &e : normw)
        e = rng.uniform(0.5f, 1.5f);
    std::vector<T> gate = random_t<T>(rng, (size_t)M * K, -4.0f, 4.0f),
                   up = random_t<T>(rng, (size_t)M * K, -2.0f, 2.0f);
    T *dx = to_dev(xh), *dgate = to_dev(gate), *dup = to_dev(up);
    float *dres = to_dev(resid), *dnorm = to_dev(normw);
    std::vector<std::vector<T>> wh(3);
    std::vector<std::vector<float>> bh(3);
    T *dw[3];
    float *db[3];
    for (int i = 0; i < 3; i++) {
        wh[i] = random_t<T>(rng, (size_t)s.N[i] * K, -0.5f, 0.5f);
        bh[i].resize(s.N[i]);
        for (auto &e : bh[i])
            e = rng.uniform(-1.0f, 1.0f);
        dw[i] = to_dev(wh[i]);
        db[i] = s.bias ? to_dev(bh[i]) : nullptr;
    }

    auto args = [&](llmrt_cuda_fused_input in, const void *x, int n_w, int first, T **outs,
                    float *residual, int m_rows) {
        llmrt_cuda_fused_gemv_args a{};
        a.t = t;
        a.input = in;
        a.x = x;
        a.up = dup;
        a.norm_w = dnorm;
        a.eps = 1e-5f;
        a.M = m_rows;
        a.K = K;
        a.n_w = n_w;
        for (int i = 0; i < n_w; i++) {
            a.w[i] = dw[first + i];
            a.bias[i] = db[first + i];
            a.N[i] = s.N[first + i];
            a.out[i] = outs ? outs[i] : nullptr;
        }
        a.residual = residual;
        return a;
    };

    // ---- 1. plain, one weight at a time, against fp64 ------------------------------------------
    std::vector<std::vector<T>> plain(3);
    for (int i = 0; i < 3; i++) {
        T *o = out_alloc<T>((size_t)M * s.N[i]);
        llmrt_cuda_fused_gemv_args a = args(LLMRT_CUDA_FUSED_IN_ACT, dx, 1, i, &o, nullptr, M);
        CHECKF(llmrt_cuda_fused_gemv(nullptr, &a) == 0, "%s: plain launch", what);
        KERNEL_OK();
        plain[i] = to_host(o, (size_t)M * s.N[i]);
        CHECKF(tail_intact(o, (size_t)M * s.N[i]), "%s: plain output tail overwritten", what);
        double worst = 0.0;
        for (int m = 0; m < M; m++)
            for (int64_t n = 0; n < s.N[i]; n++) {
                double ref = 0.0, mag = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    const double p = (double)llmrt_to_f32(xh[m * K + k]) *
                                     (double)llmrt_to_f32(wh[i][n * K + k]);
                    ref += p;
                    mag += fabs(p);
                }
                double tol = rtol_of<T>() * fabs(ref) + 1e-5 * mag + 1e-30;
                if (s.bias) {
                    ref += bh[i][n];
                    tol += 2 * rtol_of<T>() * fabs(ref); // rounded before and after the bias add
                }
                const double err = fabs((double)llmrt_to_f32(plain[i][m * s.N[i] + n]) - ref);
                if (err / tol > worst) worst = err / tol;
            }
        CHECKF(worst <= 1.0, "%s: weight %d: error / tolerance %.3g against fp64", what, i, worst);
        cudaFree(o);
    }

    // ---- 2a. grouped == single launches ---------------------------------------------------------
    {
        T *o[3];
        for (int i = 0; i < 3; i++)
            o[i] = out_alloc<T>((size_t)M * s.N[i]);
        llmrt_cuda_fused_gemv_args a = args(LLMRT_CUDA_FUSED_IN_ACT, dx, 3, 0, o, nullptr, M);
        CHECKF(llmrt_cuda_fused_gemv(nullptr, &a) == 0, "%s: grouped launch", what);
        KERNEL_OK();
        for (int i = 0; i < 3; i++) {
            CHECKF(same(to_host(o[i], (size_t)M * s.N[i]), plain[i]),
                   "%s: grouped weight %d differs from its own launch", what, i);
            CHECKF(tail_intact(o[i], (size_t)M * s.N[i]), "%s: grouped output %d tail overwritten",
                   what, i);
            cudaFree(o[i]);
        }
    }

    // ---- 2b. batch invariance: each row alone ---------------------------------------------------
    for (int m = 0; m < M; m += (M > 4 ? 3 : 1)) {
        T *o = out_alloc<T>((size_t)s.N[0]);
        llmrt_cuda_fused_gemv_args a =
            args(LLMRT_CUDA_FUSED_IN_ACT, dx + m * K, 1, 0, &o, nullptr, 1);
        CHECK(llmrt_cuda_fused_gemv(nullptr, &a) == 0);
        KERNEL_OK();
        std::vector<T> row = to_host(o, (size_t)s.N[0]);
        CHECKF(memcmp(row.data(), plain[0].data() + m * s.N[0], row.size() * sizeof(T)) == 0,
               "%s: row %d alone differs from the same row among %d", what, m, M);
        cudaFree(o);
    }

    // ---- 2c. RMSNORM == add_rmsnorm then plain --------------------------------------------------
    {
        T *h = dev_alloc<T>((size_t)M * K);
        float *res_copy = to_dev(resid);
        CUDA_OK((cudaError_t)llmrt_cuda_add_rmsnorm(nullptr, h, t, res_copy, nullptr, t, dnorm, M,
                                                    K, 1e-5f));
        KERNEL_OK();
        T *ou[2], *of[2];
        for (int i = 0; i < 2; i++) {
            ou[i] = out_alloc<T>((size_t)M * s.N[i]);
            of[i] = out_alloc<T>((size_t)M * s.N[i]);
        }
        llmrt_cuda_fused_gemv_args a = args(LLMRT_CUDA_FUSED_IN_ACT, h, 2, 0, ou, nullptr, M);
        CHECK(llmrt_cuda_fused_gemv(nullptr, &a) == 0);
        a = args(LLMRT_CUDA_FUSED_IN_RMSNORM, dres, 2, 0, of, nullptr, M);
        CHECKF(llmrt_cuda_fused_gemv(nullptr, &a) == 0, "%s: rmsnorm launch", what);
        KERNEL_OK();
        for (int i = 0; i < 2; i++) {
            CHECKF(same(to_host(of[i], (size_t)M * s.N[i]), to_host(ou[i], (size_t)M * s.N[i])),
                   "%s: rmsnorm-fused weight %d differs from rmsnorm + matmul", what, i);
            cudaFree(ou[i]);
            cudaFree(of[i]);
        }
        CHECKF(same(to_host(dres, (size_t)M * K), resid), "%s: the rmsnorm input was written",
               what);
        cudaFree(h);
        cudaFree(res_copy);
    }

    // ---- 2d. SWIGLU + residual == swiglu, plain, add
    // ----------------------------------------------
    {
        T *act = dev_alloc<T>((size_t)M * K), *o = out_alloc<T>((size_t)M * s.N[2]);
        CUDA_OK((cudaError_t)llmrt_cuda_swiglu(nullptr, t, act, dgate, dup, (int64_t)M * K));
        llmrt_cuda_fused_gemv_args a = args(LLMRT_CUDA_FUSED_IN_ACT, act, 1, 2, &o, nullptr, M);
        CHECK(llmrt_cuda_fused_gemv(nullptr, &a) == 0);
        std::vector<float> r0((size_t)M * s.N[2]);
        for (auto &e : r0)
            e = rng.uniform(-3.0f, 3.0f);
        float *ru = to_dev(r0), *rf = to_dev(r0);
        CUDA_OK((cudaError_t)llmrt_cuda_add(nullptr, ru, o, t, (int64_t)M * s.N[2]));
        a = args(LLMRT_CUDA_FUSED_IN_SWIGLU, dgate, 1, 2, nullptr, rf, M);
        CHECKF(llmrt_cuda_fused_gemv(nullptr, &a) == 0, "%s: swiglu + residual launch", what);
        KERNEL_OK();
        CHECKF(same(to_host(rf, r0.size()), to_host(ru, r0.size())),
               "%s: swiglu-fused + residual differs from swiglu, matmul, add", what);
        cudaFree(act);
        cudaFree(o);
        cudaFree(ru);
        cudaFree(rf);
    }

    for (int i = 0; i < 3; i++) {
        cudaFree(dw[i]);
        if (db[i]) cudaFree(db[i]);
    }
    cudaFree(dx);
    cudaFree(dgate);
    cudaFree(dup);
    cudaFree(dres);
    cudaFree(dnorm);
}

// The plain input with the residual epilogue (o projection) == plain, then add.
template <class T> void test_residual_plain(Rng &rng) {
    const int M = 3;
    const int64_t K = 200 * (16 / sizeof(T)), N = 37;
    std::vector<T> xh = random_t<T>(rng, (size_t)M * K, -1, 1),
                   wh = random_t<T>(rng, (size_t)N * K, -0.5f, 0.5f);
    std::vector<float> r0((size_t)M * N);
    for (auto &e : r0)
        e = rng.uniform(-3, 3);
    T *dx = to_dev(xh), *dw = to_dev(wh), *o = out_alloc<T>((size_t)M * N);
    float *ru = to_dev(r0), *rf = to_dev(r0);
    llmrt_cuda_fused_gemv_args a{};
    a.t = dt_of<T>();
    a.input = LLMRT_CUDA_FUSED_IN_ACT;
    a.x = dx;
    a.M = M;
    a.K = K;
    a.n_w = 1;
    a.w[0] = dw;
    a.N[0] = N;
    a.out[0] = o;
    CHECK(llmrt_cuda_fused_gemv(nullptr, &a) == 0);
    CUDA_OK((cudaError_t)llmrt_cuda_add(nullptr, ru, o, a.t, (int64_t)M * N));
    a.out[0] = nullptr;
    a.residual = rf;
    CHECK(llmrt_cuda_fused_gemv(nullptr, &a) == 0);
    KERNEL_OK();
    CHECKF(same(to_host(rf, r0.size()), to_host(ru, r0.size())),
           "%s: residual epilogue differs from matmul + add", name_of<T>());
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(o);
    cudaFree(ru);
    cudaFree(rf);
}

void test_refusals() {
    __half *w = dev_alloc<__half>(64 * 64 + 8), *x = dev_alloc<__half>(16 * 64);
    __half *o = out_alloc<__half>(9 * 64);
    float *r = dev_alloc<float>(64 * 9);
    llmrt_cuda_fused_gemv_args good{};
    good.t = LLMRT_CUDA_F16;
    good.input = LLMRT_CUDA_FUSED_IN_ACT;
    good.x = x;
    good.M = 1;
    good.K = 64;
    good.n_w = 1;
    good.w[0] = w;
    good.N[0] = 64;
    good.out[0] = o;
    char msg[160] = "";
    CHECK(llmrt_cuda_fused_gemv_check(&good, msg, sizeof msg) == 0);
    struct Case {
        const char *name;
        llmrt_cuda_fused_gemv_args a;
    } cases[6];
    for (auto &c : cases)
        c.a = good;
    cases[0].name = "M 9";
    cases[0].a.M = 9;
    cases[1].name = "K 60 (not whole 16-byte vectors)";
    cases[1].a.K = 60;
    cases[2].name = "residual with 2 weights";
    cases[2].a.n_w = 2;
    cases[2].a.w[1] = w;
    cases[2].a.N[1] = 64;
    cases[2].a.residual = r;
    cases[3].name = "misaligned weight";
    cases[3].a.w[0] = w + 1;
    cases[4].name = "rmsnorm without its weight";
    cases[4].a.input = LLMRT_CUDA_FUSED_IN_RMSNORM;
    cases[5].name = "dtype";
    cases[5].a.t = (llmrt_cuda_dtype)77;
    for (auto &c : cases) {
        msg[0] = 0;
        CHECKF(llmrt_cuda_fused_gemv_check(&c.a, msg, sizeof msg) != 0 && msg[0], "%s accepted",
               c.name);
        CHECKF(llmrt_cuda_fused_gemv(nullptr, &c.a) == (int)cudaErrorInvalidValue, "%s launched",
               c.name);
    }
    KERNEL_OK();
    CHECK(tail_intact(o, 0) && tail_intact(o + kTail, 9 * 64 - kTail)); // nothing was written
    cudaFree(w);
    cudaFree(x);
    cudaFree(o);
    cudaFree(r);
}

template <class T> void run_all(Rng &rng) {
    const int v = 16 / (int)sizeof(T);
    const Shape shapes[] = {
        {1, v, {1, 5, 17}, false},
        {3, 9 * v, {16, 33, 2}, true},
        {8, 73 * v, {40, 7, 17}, false},
        {5, 2056, {17, 1, 48}, true}, // 2056: past one chunk (2048 f16/bf16, 1024 f32)
        {2, 4104, {5, 16, 3}, false}, // several chunks, a short last one
        {4, 264, {130, 3, 9}, true},
    };
    for (const Shape &s : shapes)
        run_shape<T>(s, rng);
    test_residual_plain<T>(rng);
}

} // namespace

int main() {
    require_device();
    Rng rng(20);
    run_all<__half>(rng);
    run_all<__nv_bfloat16>(rng);
    run_all<float>(rng);
    test_refusals();
    return test_summary("test_fused_gemv");
}
