// q4_repack.cu: host code that turns the loader's 4-bit format into the layout of the q4 kernels
// (q4_matmul.h has the layout; q4_common.cuh the device side that reads it). Runs once per weight
// at load; plain loops (a 7B model's 6.5 G nibbles take seconds, once).
#include <cstdio>
#include <cstring>

#include "q4_common.cuh" // kMaxSplitTiles
#include "q4_matmul.h"

namespace {

constexpr int64_t kAlign = 256; // each array starts 256-byte aligned (16 needed: uint4 loads)

uint64_t round_up(uint64_t x) {
    return (x + kAlign - 1) / kAlign * kAlign;
}

// Nibble q of stored column k of row n.
inline uint32_t nib(const llmrt_cuda_q4_src *s, int64_t n, int64_t k) {
    return (s->qs[n * (s->cols / 2) + k / 2] >> (4 * (k & 1))) & 0xfu;
}

// fp16 bits of a small non-negative integer (0..16), exact.
uint16_t f16_of_int(int v) {
    if (v == 0) return 0;
    int e = 0;
    while ((1 << (e + 1)) <= v) e++;
    const uint32_t mant = ((uint32_t)v << (10 - e)) & 0x3ffu; // v < 2^11: exact
    return (uint16_t)(((e + 15) << 10) | mant);
}

} // namespace

extern "C" int llmrt_cuda_q4_check(int64_t N, int64_t K, int32_t group_size, char *msg,
                                   size_t cap) {
    const char *why = nullptr;
    if (N <= 0 || K <= 0 || N >= ((int64_t)1 << 31) || K >= ((int64_t)1 << 31))
        why = "N and K must lie in 1 .. 2^31 - 1";
    else if (N % 64 != 0)
        why = "N (output features) must be a multiple of 64 (the 64-column fragment blocks)";
    else if (N / 64 > q4::kMaxSplitTiles)
        why = "N (output features) must be at most 262144 (64 x the split-K tile counters)";
    else if (K % 64 != 0)
        why = "K (input features) must be a multiple of 64 (the GEMM's k tile)";
    else if (group_size <= 0 || K % group_size != 0 || (group_size != 32 && group_size % 64 != 0))
        why = "group size must be 32 or a multiple of 64 that divides K";
    if (!why) return 0;
    if (msg && cap) snprintf(msg, cap, "4-bit weight [%lld, %lld] group size %d: %s",
                             (long long)N, (long long)K, (int)group_size, why);
    return 1;
}

extern "C" llmrt_cuda_q4_sizes llmrt_cuda_q4_packed_sizes(int64_t N, int64_t K, int32_t group_size,
                                                          int has_perm) {
    llmrt_cuda_q4_sizes s;
    const uint64_t G = (uint64_t)(K / group_size);
    s.qweight = round_up((uint64_t)N * (uint64_t)K / 2);
    s.scales  = round_up(G * (uint64_t)N * 2);
    s.zoff    = s.scales;
    s.perm    = has_perm ? round_up((uint64_t)K * 4) : 0;
    s.total   = s.qweight + s.scales + s.zoff + s.perm;
    return s;
}

extern "C" void llmrt_cuda_q4_repack(const llmrt_cuda_q4_src *src, void *dst) {
    const int64_t N = src->rows, K = src->cols, NB = N / 64, KT = K / 16;
    const int64_t G = K / src->group_size;
    const llmrt_cuda_q4_sizes sz = llmrt_cuda_q4_packed_sizes(N, K, src->group_size, src->perm != nullptr);
    memset(dst, 0, sz.total);
    uint32_t *qw = (uint32_t *)dst;
    uint16_t *sc = (uint16_t *)((char *)dst + sz.qweight);
    uint16_t *zo = (uint16_t *)((char *)dst + sz.qweight + sz.scales);
    // qweight: [KT][NB][lane][word]
    for (int64_t kt = 0; kt < KT; kt++)
        for (int64_t nb = 0; nb < NB; nb++)
            for (int lane = 0; lane < 32; lane++) {
                const int g = lane >> 2, t = lane & 3;
                const int64_t k0 = kt * 16 + 2 * t;
                for (int j = 0; j < 4; j++) {
                    const int64_t c0 = nb * 64 + 16 * j + g, c1 = c0 + 8;
                    // e0..e3: column c0 at k0, k0+1, k0+8, k0+9; e4..e7: column c1
                    const uint32_t e[8] = {nib(src, c0, k0), nib(src, c0, k0 + 1), nib(src, c0, k0 + 8),
                                           nib(src, c0, k0 + 9), nib(src, c1, k0), nib(src, c1, k0 + 1),
                                           nib(src, c1, k0 + 8), nib(src, c1, k0 + 9)};
                    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7}; // nibble p holds e[order[p]]
                    uint32_t w = 0;
                    for (int p = 0; p < 8; p++) w |= e[order[p]] << (4 * p);
                    qw[((kt * NB + nb) * 32 + lane) * 4 + j] = w;
                }
            }
    // scales / zoff: [G][NB][g][i], column nb*64 + g + 8i
    for (int64_t gi = 0; gi < G; gi++)
        for (int64_t nb = 0; nb < NB; nb++)
            for (int g = 0; g < 8; g++)
                for (int i = 0; i < 8; i++) {
                    const int64_t n = nb * 64 + g + 8 * i, at = ((gi * NB + nb) * 8 + g) * 8 + i;
                    sc[at] = src->scales[n * G + gi];
                    zo[at] = src->zero_float ? src->offsets[n * G + gi] : f16_of_int(src->zeros[n * G + gi]);
                }
    if (src->perm) memcpy((char *)dst + sz.qweight + sz.scales + sz.zoff, src->perm, (size_t)K * 4);
}

extern "C" llmrt_cuda_q4_weight llmrt_cuda_q4_view(const void *dev, int64_t N, int64_t K,
                                                   int32_t group_size, int zero_float, int has_perm) {
    const llmrt_cuda_q4_sizes sz = llmrt_cuda_q4_packed_sizes(N, K, group_size, has_perm);
    const char *b = (const char *)dev;
    llmrt_cuda_q4_weight w;
    w.qweight    = (const uint32_t *)b;
    w.scales     = (const uint16_t *)(b + sz.qweight);
    w.zoff       = (const uint16_t *)(b + sz.qweight + sz.scales);
    w.perm       = has_perm ? (const int32_t *)(b + sz.qweight + sz.scales + sz.zoff) : nullptr;
    w.N          = N;
    w.K          = K;
    w.x_cols     = 0;
    w.group_size = group_size;
    w.zero_float = zero_float;
    return w;
}
