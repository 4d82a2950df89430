// test_kv8.cu: the 8-bit KV cache on the device (cuda/kv8.cuh): llmrt_cuda_rope_kv8 and
// llmrt_cuda_attention_naive_kv8, for int8 and fp8 e4m3 pools, activations f32 / f16 / bf16,
// over irregular shapes (hd 16 / 36 / 64 / 128, block sizes 5 / 7 / 16, GQA 1 / 3 / 4, windows).
//
//  - the write: with inv_freq = 0 the rotation is the identity (cos 0 = 1, sin 0 = 0 exactly), so
//    the pools must hold, byte for byte, what the host's quantiser (host/format/kv_quant.c, the
//    CPU backend's) writes for the same values: codes and fp32 scales equal, including an all-zero
//    head (scale 0) and a head with a NaN (scale NaN, codes 0). Bytes of slots no token wrote keep
//    their fill pattern (no stray writes).
//  - the naive attention: against an fp64 reference over the values the pools stand for
//    (dequantised on the host by llmrt_kv_dequantise_head), |out - ref| <= atol + rtol |ref| with
//    the tolerances of test_elementwise_kernels.cu's naive attention (fp32 math, one rounding to
//    the output type).
//  - the flash kernels (attention.h, args.kv): prefill over mixed prompt chunks and decode tokens,
//    split-KV decode (heuristic and 3 forced splits), hd 64 / 128, f16 / bf16, with and without a
//    window: their loader dequantises each value once to the element type (scale * code in fp32,
//    one rounding), so the fp64 reference takes those values, and the accuracy criterion is
//    attention_ref.h's (FlashAttention's error ratio): max|out - ref| <= 2 max|out_lp - ref| +
//    2^-14, out_lp = the reference with P and the output rounded to the element type.
//    Slots no sequence owns, and under a window the blocks below it, hold NaN scales and codes:
//    a kernel that read one would produce NaN.
#include "../attention_decode.cu"
#include "../attention_naive.cu"
#include "../attention_prefill.cu"
#include "../rope_kv.cu"
#include "test_util.cuh"

// the host's quantiser itself, compiled into this program (C that is also valid C++)
#include "../../host/format/kv_quant.c"

#include <algorithm>

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
template <class T> double tol_of() { // atol = rtol (test_elementwise_kernels.cu)
    return dt_of<T>() == LLMRT_CUDA_F32 ? 1e-5 : dt_of<T>() == LLMRT_CUDA_F16 ? 1e-3 : 1.6e-2;
}

uint64_t g_rng = 0x2545f4914f6cdd1dull;
float frand() { // [-1, 1)
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) / 8388608.0 - 1.0);
}
int irand(int n) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((g_rng >> 33) % (uint64_t)n);
}

llmrt_dtype host_kv(llmrt_cuda_kv kv) {
    return kv == LLMRT_CUDA_KV_INT8 ? LLMRT_DTYPE_I8 : LLMRT_DTYPE_F8_E4M3;
}
const char *kv_name(llmrt_cuda_kv kv) {
    return kv == LLMRT_CUDA_KV_INT8 ? "int8" : "fp8";
}

// ---- the write ----------------------------------------------------------------------------------
template <class T> void test_write(llmrt_cuda_kv kv, int T_, int Hq, int Hkv, int hd, int bs) {
    const int n_blocks = (T_ + bs - 1) / bs + 3;
    const llmrt_kv8_layout L = {bs, Hkv, hd};
    const size_t pool_bytes = (size_t)n_blocks * llmrt_kv8_block_bytes(&L);
    std::vector<T> q((size_t)T_ * Hq * hd), k((size_t)T_ * Hkv * hd), v(k.size());
    for (auto &x : q)
        x = llmrt_from_f32<T>(frand());
    for (size_t i = 0; i < k.size(); i++) { // heads of different magnitudes
        const float amp = (float)(1 + (i / hd) % 5) * 0.7f;
        k[i] = llmrt_from_f32<T>(amp * frand());
        v[i] = llmrt_from_f32<T>(amp * frand());
    }
    for (int d = 0; d < hd; d++)
        k[d] = llmrt_from_f32<T>(0.0f);                           // token 0 head 0: all zero
    if (T_ > 1) v[(size_t)Hkv * hd + 3] = llmrt_from_f32<T>(NAN); // token 1 head 0 of v: a NaN
    std::vector<int64_t> slots(T_);
    std::vector<int> perm(n_blocks * bs);
    for (int i = 0; i < n_blocks * bs; i++)
        perm[i] = i;
    for (int i = n_blocks * bs - 1; i > 0; i--)
        std::swap(perm[i], perm[irand(i + 1)]);
    for (int t = 0; t < T_; t++)
        slots[t] = perm[t];
    std::vector<int32_t> pos(T_);
    for (int t = 0; t < T_; t++)
        pos[t] = 3 * t + 1;
    std::vector<float> inv_freq(hd / 2, 0.0f);

    T *d_q = to_dev(q), *d_k = to_dev(k), *d_v = to_dev(v);
    int64_t *d_slots = to_dev(slots);
    int32_t *d_pos = to_dev(pos);
    float *d_inv = to_dev(inv_freq);
    uint8_t *d_kp = dev_alloc<uint8_t>(pool_bytes), *d_vp = dev_alloc<uint8_t>(pool_bytes);
    CUDA_OK(cudaMemset(d_kp, 0x5b, pool_bytes));
    CUDA_OK(cudaMemset(d_vp, 0x5b, pool_bytes));
    CUDA_OK((cudaError_t)llmrt_cuda_rope_kv8(nullptr, dt_of<T>(), kv, d_q, d_k, d_v, d_kp, d_vp,
                                             d_pos, d_slots, d_inv, T_, Hq, Hkv, hd, bs));
    KERNEL_OK();
    std::vector<uint8_t> kp = to_host(d_kp, pool_bytes), vp = to_host(d_vp, pool_bytes);
    std::vector<T> q_after = to_host(d_q, q.size());

    // the host's pools for the same values (bytes no token writes: the fill pattern)
    std::vector<uint8_t> hk(pool_bytes, 0x5b), hv(pool_bytes, 0x5b);
    std::vector<float> row((size_t)Hkv * hd);
    for (int t = 0; t < T_; t++) {
        for (size_t e = 0; e < row.size(); e++)
            row[e] = llmrt_to_f32(k[(size_t)t * row.size() + e]);
        llmrt_kv_quantise_token(hk.data(), &L, slots[t], row.data(), host_kv(kv));
        for (size_t e = 0; e < row.size(); e++)
            row[e] = llmrt_to_f32(v[(size_t)t * row.size() + e]);
        llmrt_kv_quantise_token(hv.data(), &L, slots[t], row.data(), host_kv(kv));
    }
    // NaN scales compare as bytes too: both sides store the NaN of amax / tmax (a quiet NaN from
    // the NaN input), but its payload may differ; compare those scales as "both NaN"
    size_t bad = 0, nan_scales = 0;
    for (int t = 0; t < T_; t++)
        for (int h = 0; h < Hkv; h++) {
            const float sk = llmrt_kv8_scale(kp.data(), &L, slots[t], h),
                        sv = llmrt_kv8_scale(vp.data(), &L, slots[t], h);
            const float hsk = llmrt_kv8_scale(hk.data(), &L, slots[t], h),
                        hsv = llmrt_kv8_scale(hv.data(), &L, slots[t], h);
            if (hsv != hsv) {
                nan_scales++;
                bad += sv == sv;
                memcpy(vp.data() + llmrt_kv8_scale_off(&L, slots[t], h), &hsv, 4);
            }
            if (t == 0 && h == 0) bad += !(sk == 0.0f && hsk == 0.0f);
        }
    for (size_t i = 0; i < pool_bytes; i++)
        bad += (kp[i] != hk[i]) + (vp[i] != hv[i]);
    bool q_same = memcmp(q.data(), q_after.data(), q.size() * sizeof(T)) == 0;
    printf("rope_kv8 %s %s T=%d Hq=%d Hkv=%d hd=%d bs=%d: %zu bytes differ from the host's "
           "quantiser (%zu NaN heads)\n",
           kv_name(kv), name_of<T>(), T_, Hq, Hkv, hd, bs, bad, nan_scales);
    CHECKF(bad == 0, "%s %s: device pools differ from the host quantiser", kv_name(kv),
           name_of<T>());
    CHECKF(T_ < 2 || nan_scales == 1, "the NaN head was not seen");
    CHECKF(q_same, "rotation by angle 0 changed q");
    void *ps[] = {d_q, d_k, d_v, d_slots, d_pos, d_inv, d_kp, d_vp};
    for (void *p : ps)
        cudaFree(p);
}

// ---- the attention ------------------------------------------------------------------------------
template <class T>
void test_attention(llmrt_cuda_kv kv, int Hq, int Hkv, int hd, int bs, int window,
                    const std::vector<int> &lens, const std::vector<int> &first) {
    const int n_seqs = (int)lens.size();
    int max_len = 0;
    for (int x : lens)
        max_len = std::max(max_len, x);
    const int max_blocks = (max_len + bs - 1) / bs, n_blocks = n_seqs * max_blocks + 2;
    const llmrt_kv8_layout L = {bs, Hkv, hd};
    const size_t pool_bytes = (size_t)n_blocks * llmrt_kv8_block_bytes(&L);
    // pools: NaN codes and scales everywhere (fp8 0x7F is NaN; an int8 code is never NaN, but its
    // NaN scale makes the value NaN), then each sequence's tokens quantised from random values
    std::vector<uint8_t> kp(pool_bytes, 0x7f), vp(pool_bytes, 0x7f);
    const float nanf_ = NAN;
    for (size_t sl = 0; sl < (size_t)n_blocks * bs; sl++)
        for (int h = 0; h < Hkv; h++) {
            memcpy(kp.data() + llmrt_kv8_scale_off(&L, sl, h), &nanf_, 4);
            memcpy(vp.data() + llmrt_kv8_scale_off(&L, sl, h), &nanf_, 4);
        }
    std::vector<int> perm(n_blocks);
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--)
        std::swap(perm[i], perm[irand(i + 1)]);
    std::vector<int32_t> table((size_t)n_seqs * max_blocks, -1);
    std::vector<float> row((size_t)Hkv * hd);
    auto slot_of = [&](int s, int p) {
        return (int64_t)table[(size_t)s * max_blocks + p / bs] * bs + p % bs;
    };
    for (int s = 0; s < n_seqs; s++) {
        const int lo = window > 0 && first[s] >= window ? first[s] - window + 1 : 0;
        for (int b = 0; b < (lens[s] + bs - 1) / bs; b++)
            table[(size_t)s * max_blocks + b] = (b + 1) * bs <= lo ? -1 : perm[s * max_blocks + b];
        for (int p = lo / bs * bs; p < lens[s]; p++) {
            for (auto &x : row)
                x = 2.0f * frand();
            llmrt_kv_quantise_token(kp.data(), &L, slot_of(s, p), row.data(), host_kv(kv));
            for (auto &x : row)
                x = frand();
            llmrt_kv_quantise_token(vp.data(), &L, slot_of(s, p), row.data(), host_kv(kv));
        }
    }
    std::vector<int32_t> pos, seq;
    for (int s = 0; s < n_seqs; s++)
        for (int p = first[s]; p < lens[s]; p++)
            pos.push_back(p), seq.push_back(s);
    const int T_ = (int)pos.size();
    std::vector<T> q((size_t)T_ * Hq * hd);
    for (auto &x : q)
        x = llmrt_from_f32<T>(2.0f * frand());

    uint8_t *d_kp = to_dev(kp), *d_vp = to_dev(vp);
    T *d_q = to_dev(q), *d_out = dev_alloc<T>(q.size());
    int32_t *d_pos = to_dev(pos), *d_seq = to_dev(seq), *d_table = to_dev(table);
    const float scale = 1.0f / sqrtf((float)hd);
    CUDA_OK((cudaError_t)llmrt_cuda_attention_naive_kv8(nullptr, dt_of<T>(), kv, d_out, d_q, d_kp,
                                                        d_vp, d_pos, d_seq, d_table, max_blocks, T_,
                                                        Hq, Hkv, hd, bs, scale, window));
    KERNEL_OK();
    std::vector<T> out = to_host(d_out, q.size());

    // fp64 reference over the dequantised pools
    const int G = Hq / Hkv;
    double worst = 0;
    std::vector<float> kd(hd), vd(hd);
    std::vector<double> sc, o(hd);
    for (int t = 0; t < T_; t++)
        for (int h = 0; h < Hq; h++) {
            const int s = seq[t], p1 = pos[t], kvh = h / G;
            const int p0 = window > 0 && p1 >= window ? p1 - window + 1 : 0;
            sc.assign(p1 + 1, 0.0);
            double mx = -INFINITY, sum = 0;
            for (int p = p0; p <= p1; p++) {
                const int64_t sl = slot_of(s, p);
                llmrt_kv_dequantise_head(kd.data(), kp.data() + llmrt_kv8_codes_off(&L, sl, kvh),
                                         llmrt_kv8_scale(kp.data(), &L, sl, kvh), hd, host_kv(kv));
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)llmrt_to_f32(q[((size_t)t * Hq + h) * hd + i]) * kd[i];
                sc[p] = d * scale;
                mx = std::max(mx, sc[p]);
            }
            std::fill(o.begin(), o.end(), 0.0);
            for (int p = p0; p <= p1; p++) {
                const double e = exp(sc[p] - mx);
                sum += e;
                const int64_t sl = slot_of(s, p);
                llmrt_kv_dequantise_head(vd.data(), vp.data() + llmrt_kv8_codes_off(&L, sl, kvh),
                                         llmrt_kv8_scale(vp.data(), &L, sl, kvh), hd, host_kv(kv));
                for (int i = 0; i < hd; i++)
                    o[i] += e * vd[i];
            }
            for (int i = 0; i < hd; i++) {
                const double ref = o[i] / sum;
                const double got = llmrt_to_f32(out[((size_t)t * Hq + h) * hd + i]);
                const double e = fabs(got - ref) / (tol_of<T>() * (1 + fabs(ref)));
                if (!(e <= worst)) worst = e; // NaN sticks
            }
        }
    printf("attention_naive_kv8 %s %s Hq=%d Hkv=%d hd=%d bs=%d window=%d T=%d: worst error %.3f "
           "of the tolerance\n",
           kv_name(kv), name_of<T>(), Hq, Hkv, hd, bs, window, T_, worst);
    CHECKF(worst <= 1.0, "%s %s hd %d: error %.3g x the tolerance", kv_name(kv), name_of<T>(), hd,
           worst);
    void *ps[] = {d_kp, d_vp, d_q, d_out, d_pos, d_seq, d_table};
    for (void *p : ps)
        cudaFree(p);
}

// ---- the flash kernels ----------------------------------------------------------------------
template <class T>
void test_flash(llmrt_cuda_kv kv, int Hq, int Hkv, int hd, int bs, int window,
                const std::vector<int> &lens, const std::vector<int> &first, bool decode) {
    const int n_seqs = (int)lens.size();
    int max_len = 0;
    for (int x : lens)
        max_len = std::max(max_len, x);
    const int max_blocks = (max_len + bs - 1) / bs, n_blocks = n_seqs * max_blocks + 2;
    const llmrt_kv8_layout L = {bs, Hkv, hd};
    const size_t pool_bytes = (size_t)n_blocks * llmrt_kv8_block_bytes(&L);
    std::vector<uint8_t> kp(pool_bytes, 0x7f), vp(pool_bytes, 0x7f);
    const float nanf_ = NAN;
    for (size_t sl = 0; sl < (size_t)n_blocks * bs; sl++)
        for (int h = 0; h < Hkv; h++) {
            memcpy(kp.data() + llmrt_kv8_scale_off(&L, sl, h), &nanf_, 4);
            memcpy(vp.data() + llmrt_kv8_scale_off(&L, sl, h), &nanf_, 4);
        }
    std::vector<int> perm(n_blocks);
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--)
        std::swap(perm[i], perm[irand(i + 1)]);
    std::vector<int32_t> table((size_t)n_seqs * max_blocks, -1);
    std::vector<float> row((size_t)Hkv * hd);
    auto slot_of = [&](int s, int p) {
        return (int64_t)table[(size_t)s * max_blocks + p / bs] * bs + p % bs;
    };
    std::vector<int32_t> q_start, q_len, ctx, seq_slot;
    int T_ = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int lo = window > 0 && first[s] >= window ? first[s] - window + 1 : 0;
        for (int b = 0; b < (lens[s] + bs - 1) / bs; b++)
            table[(size_t)s * max_blocks + b] = (b + 1) * bs <= lo ? -1 : perm[s * max_blocks + b];
        for (int p = lo / bs * bs; p < lens[s]; p++) {
            for (auto &x : row)
                x = 2.5f * frand();
            llmrt_kv_quantise_token(kp.data(), &L, slot_of(s, p), row.data(), host_kv(kv));
            for (auto &x : row)
                x = frand();
            llmrt_kv_quantise_token(vp.data(), &L, slot_of(s, p), row.data(), host_kv(kv));
        }
        q_start.push_back(T_), q_len.push_back(lens[s] - first[s]), ctx.push_back(lens[s]);
        seq_slot.push_back(s);
        T_ += lens[s] - first[s];
    }
    std::vector<T> q((size_t)T_ * Hq * hd);
    for (auto &x : q)
        x = llmrt_from_f32<T>(2.5f * frand());
    uint8_t *d_kp = to_dev(kp), *d_vp = to_dev(vp);
    T *d_q = to_dev(q), *d_out = dev_alloc<T>(q.size());
    int32_t *d_table = to_dev(table), *d_qs = to_dev(q_start), *d_ql = to_dev(q_len),
            *d_ctx = to_dev(ctx), *d_slot = to_dev(seq_slot);
    const size_t ws_bytes = llmrt_cuda_attention_decode_workspace_bytes(n_seqs, Hq, hd, 16);
    void *d_ws = dev_alloc<unsigned char>(ws_bytes);
    llmrt_cuda_attn_args a = {};
    a.q = d_q, a.out = d_out, a.k_cache = d_kp, a.v_cache = d_vp, a.block_tables = d_table;
    a.q_start = d_qs, a.q_len = d_ql, a.ctx_len = d_ctx, a.seq_slot = d_slot;
    a.n_seqs = n_seqs, a.n_tokens = T_, a.n_heads = Hq, a.n_kv_heads = Hkv, a.head_dim = hd;
    a.block_size = bs, a.max_blocks = max_blocks, a.max_ctx_len = max_len;
    a.scale = 1.0f / sqrtf((float)hd);
    a.dtype = dt_of<T>() == LLMRT_CUDA_BF16 ? LLMRT_CUDA_ATTN_BF16 : LLMRT_CUDA_ATTN_F16;
    a.window = window, a.kv = kv, a.workspace = d_ws, a.workspace_bytes = ws_bytes;

    // fp64 reference over the values the loader makes (scale * code rounded to T), and out_lp
    const int G = Hq / Hkv;
    std::vector<double> ref(q.size()), lp(q.size());
    std::vector<float> kd(hd), vd(hd);
    std::vector<double> sc, o(hd), olp(hd);
    auto elem = [](double x) { return (double)llmrt_to_f32(llmrt_from_f32<T>((float)x)); };
    double max_lp = 0, max_ref = 0;
    for (int s = 0, t = 0; s < n_seqs; s++)
        for (int p1 = first[s]; p1 < lens[s]; p1++, t++)
            for (int h = 0; h < Hq; h++) {
                const int kvh = h / G, p0 = window > 0 && p1 >= window ? p1 - window + 1 : 0;
                sc.assign(p1 + 1, 0.0);
                double mx = -INFINITY, sum = 0;
                for (int p = p0; p <= p1; p++) {
                    const int64_t sl = slot_of(s, p);
                    llmrt_kv_dequantise_head(
                        kd.data(), kp.data() + llmrt_kv8_codes_off(&L, sl, kvh),
                        llmrt_kv8_scale(kp.data(), &L, sl, kvh), hd, host_kv(kv));
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)llmrt_to_f32(q[((size_t)t * Hq + h) * hd + i]) * elem(kd[i]);
                    sc[p] = d * a.scale;
                    mx = std::max(mx, sc[p]);
                }
                std::fill(o.begin(), o.end(), 0.0);
                std::fill(olp.begin(), olp.end(), 0.0);
                for (int p = p0; p <= p1; p++) {
                    const double e = exp(sc[p] - mx);
                    sum += e;
                    const int64_t sl = slot_of(s, p);
                    llmrt_kv_dequantise_head(
                        vd.data(), vp.data() + llmrt_kv8_codes_off(&L, sl, kvh),
                        llmrt_kv8_scale(vp.data(), &L, sl, kvh), hd, host_kv(kv));
                    for (int i = 0; i < hd; i++) {
                        o[i] += e * elem(vd[i]);
                        olp[i] += elem(e) * elem(vd[i]);
                    }
                }
                for (int i = 0; i < hd; i++) {
                    const size_t at = ((size_t)t * Hq + h) * hd + i;
                    ref[at] = o[i] / sum;
                    lp[at] = elem(olp[i] / sum);
                    max_lp = std::max(max_lp, fabs(lp[at] - ref[at]));
                    max_ref = std::max(max_ref, fabs(ref[at]));
                }
            }
    std::vector<int> splits = decode ? std::vector<int>{0, 3} : std::vector<int>{-1};
    for (int sp : splits) {
        CUDA_OK(cudaMemset(d_out, 0xff, q.size() * sizeof(T)));
        char err[256] = "";
        int rc;
        if (sp < 0) {
            rc = llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err);
        } else {
            a.num_splits = sp;
            rc = llmrt_cuda_attention_decode(&a, nullptr, err, sizeof err);
        }
        CHECKF(rc == 0, "%s", err);
        KERNEL_OK();
        std::vector<T> out = to_host(d_out, q.size());
        double worst = 0;
        for (size_t e = 0; e < out.size(); e++) {
            const double d = fabs((double)llmrt_to_f32(out[e]) - ref[e]);
            if (!(d <= worst)) worst = d;
        }
        const double bound = 2 * max_lp + 0x1p-14;
        printf("flash %s %s %s hd=%d Hq/Hkv=%d/%d bs=%d window=%d T=%d splits=%d: max|err| %.3g, "
               "bound %.3g (max|ref| %.3g)\n",
               sp < 0 ? "prefill" : "decode", kv_name(kv), name_of<T>(), hd, Hq, Hkv, bs, window,
               T_, sp, worst, bound, max_ref);
        CHECKF(worst <= bound, "flash %s %s %s hd %d: max|err| %.3g > %.3g",
               sp < 0 ? "prefill" : "decode", kv_name(kv), name_of<T>(), hd, worst, bound);
    }
    void *ps[] = {d_kp, d_vp, d_q, d_out, d_table, d_qs, d_ql, d_ctx, d_slot, d_ws};
    for (void *p : ps)
        cudaFree(p);
}

template <class T> void run_all(llmrt_cuda_kv kv) {
    test_write<T>(kv, 1, 4, 2, 16, 5);
    test_write<T>(kv, 7, 9, 3, 64, 16);
    test_write<T>(kv, 33, 8, 2, 128, 7);
    test_write<T>(kv, 5, 3, 1, 36, 4);
    // prompts from 0, a chunk mid-sequence, decode tokens (one on a block boundary)
    test_attention<T>(kv, 4, 4, 64, 16, 0, {37, 73, 101, 17}, {0, 50, 100, 16});
    test_attention<T>(kv, 9, 3, 64, 16, 0, {20, 33}, {0, 32});
    test_attention<T>(kv, 8, 2, 128, 7, 0, {30, 45}, {29, 0});
    test_attention<T>(kv, 3, 1, 36, 5, 0, {23}, {0});
    // sliding windows below and across blocks (freed blocks: -1 in the table, NaN in the pool)
    test_attention<T>(kv, 4, 2, 16, 4, 8, {40, 25}, {30, 0});
    test_attention<T>(kv, 9, 3, 64, 16, 20, {70, 9}, {60, 8});
    if (dt_of<T>() == LLMRT_CUDA_F32) return; // the flash kernels take f16 / bf16
    // prefill: prompts from 0, a chunk after cached positions, a decode token, odd block sizes
    test_flash<T>(kv, 4, 2, 64, 16, 0, {70, 130, 101}, {0, 61, 100}, false);
    test_flash<T>(kv, 8, 2, 128, 7, 0, {45, 66}, {0, 65}, false);
    test_flash<T>(kv, 9, 3, 64, 5, 24, {100, 40}, {70, 0}, false);
    // decode: one token per sequence, contexts across several 64-token tiles
    test_flash<T>(kv, 4, 2, 64, 16, 0, {300, 65, 1, 129}, {299, 64, 0, 128}, true);
    test_flash<T>(kv, 8, 2, 128, 7, 0, {200, 33}, {199, 32}, true);
    test_flash<T>(kv, 9, 3, 64, 16, 40, {250, 20}, {249, 19}, true);
}

} // namespace

int main() {
    require_device();
    for (llmrt_cuda_kv kv : {LLMRT_CUDA_KV_INT8, LLMRT_CUDA_KV_FP8}) {
        run_all<float>(kv);
        run_all<__half>(kv);
        run_all<__nv_bfloat16>(kv);
    }
    // the launchers refuse what they do not take
    CHECK(llmrt_cuda_rope_kv8(nullptr, LLMRT_CUDA_F16, LLMRT_CUDA_KV_INT8, nullptr, nullptr,
                              nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 2, 18,
                              16) == (int)cudaErrorInvalidValue); /* hd % 4 */
    CHECK(llmrt_cuda_attention_naive_kv8(nullptr, LLMRT_CUDA_F16, LLMRT_CUDA_KV_ACT, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1,
                                         4, 2, 16, 16, 1.0f, 0) == (int)cudaErrorInvalidValue);
    return test_summary("test_kv8");
}
