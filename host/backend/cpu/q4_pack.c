/* Repacking the internal 4-bit format into the CPU layout (q4_kernels.h), and the choice of
 * kernel variant. Baseline x86-64 code. */
#include <stdlib.h>
#include <string.h>

#include "../../core/checked_math.h"
#include "../../core/half.h"
#include "cpu_memory.h"
#include "q4_kernels.h"

static int nibble(const uint8_t *qs, int64_t col) {
    return (qs[col >> 1] >> (4 * (col & 1))) & 0x0f;
}

llmrt_status llmrt_cpu_q4_pack(const llmrt_q4_host *h, llmrt_cpu_q4 *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    int64_t N = h->rows, K = h->cols, gs = h->group_size;
    if (N <= 0 || K <= 0 || gs <= 0 || K % gs != 0 || K % 2 != 0 || !h->qs || !h->scales)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "cpu backend: invalid 4-bit weight [%lld, %lld] group %lld", (long long)N,
                         (long long)K, (long long)gs);
    if ((h->zero_kind == LLMRT_Q4_ZERO_INT && !h->zeros) ||
        (h->zero_kind == LLMRT_Q4_ZERO_FLOAT && !h->offsets) ||
        (h->zero_kind != LLMRT_Q4_ZERO_INT && h->zero_kind != LLMRT_Q4_ZERO_FLOAT))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "cpu backend: 4-bit weight without zero terms");
    if (K % LLMRT_CPU_Q4_BLOCK != 0 || gs % LLMRT_CPU_Q4_BLOCK != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cpu backend: 4-bit kernels need K (%lld) and the group size (%lld) to be "
                         "multiples of %d",
                         (long long)K, (long long)gs, LLMRT_CPU_Q4_BLOCK);
    int64_t G = K / gs, n_tiles = (N + 3) / 4;
    int64_t group_bytes = 16 + 64 * (gs / LLMRT_CPU_Q4_BLOCK);
    uint64_t tile_bytes, data_bytes, perm_bytes = h->perm ? (uint64_t)K * sizeof(int32_t) : 0;
    if (!ck_mul_u64((uint64_t)G, (uint64_t)group_bytes, &tile_bytes) ||
        !ck_mul_u64(tile_bytes, (uint64_t)n_tiles, &data_bytes) ||
        data_bytes > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu backend: 4-bit weight too large");
    uint64_t off_pm = (data_bytes + 63) & ~(uint64_t)63;
    uint64_t total = off_pm + perm_bytes + 64;
    uint8_t *mem = NULL;
    if (!(mem = llmrt_cpu_mem_alloc((size_t)total)))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %llu bytes",
                         (unsigned long long)total);
    memset(mem, 0, (size_t)total); /* padding rows: zero scales, zero nibbles */
    out->rows = N;
    out->cols = K;
    out->group_size = (int32_t)gs;
    out->n_groups = (int32_t)G;
    out->zero_kind = h->zero_kind;
    out->group_bytes = group_bytes;
    out->tile_bytes = (int64_t)tile_bytes;
    out->mem = mem;
    out->data = mem;
    out->perm = h->perm ? (int32_t *)(mem + off_pm) : NULL;

    int64_t Kx = h->x_cols ? h->x_cols : K;
    if (Kx < 1 || Kx > K || (Kx != K && !h->perm)) {
        llmrt_cpu_q4_free(out);
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "cpu backend: 4-bit weight input width %lld with %lld columns",
                         (long long)Kx, (long long)K);
    }
    out->x_cols = Kx;
    if (h->perm) {
        /* every input column at most once (exactly once without padding); -1 = padding */
        uint8_t *seen = calloc((size_t)Kx, 1);
        if (!seen) {
            llmrt_cpu_q4_free(out);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
        for (int64_t j = 0; j < K; j++) {
            int32_t p = h->perm[j];
            if (p == -1 && Kx != K) {
                out->perm[j] = p;
                continue;
            }
            if (p < 0 || p >= Kx || seen[p]) {
                free(seen);
                llmrt_cpu_q4_free(out);
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "cpu backend: 4-bit weight perm is not a permutation");
            }
            seen[p] = 1;
            out->perm[j] = p;
        }
        free(seen);
    }
    int64_t bpg = gs / LLMRT_CPU_Q4_BLOCK;
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *src = h->qs + n * (K / 2);
        uint8_t *tile = out->data + (n / 4) * (int64_t)tile_bytes;
        int slot = (int)(n % 4);
        for (int64_t g = 0; g < G; g++) {
            uint8_t *grp = tile + g * group_bytes;
            uint16_t zp = h->zero_kind == LLMRT_Q4_ZERO_INT
                              ? llmrt_f32_to_f16((float)h->zeros[n * G + g])
                              : h->offsets[n * G + g];
            memcpy(grp + 2 * slot, &h->scales[n * G + g], 2);
            memcpy(grp + 8 + 2 * slot, &zp, 2);
            for (int64_t b = 0; b < bpg; b++) {
                uint8_t *dst = grp + 16 + 64 * b + 16 * slot;
                int64_t c0 = (g * bpg + b) * LLMRT_CPU_Q4_BLOCK;
                for (int c = 0; c < 16; c++)
                    dst[llmrt_cpu_q4_byte_of(c)] =
                        (uint8_t)(nibble(src, c0 + c) | nibble(src, c0 + 16 + c) << 4);
            }
        }
    }
    return LLMRT_OK;
}

void llmrt_cpu_q4_free(llmrt_cpu_q4 *w) {
    llmrt_cpu_mem_free(w->mem);
    memset(w, 0, sizeof *w);
}

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_for(const char *isa) {
    llmrt_cpu_q4_kernels k = {0};
    if (isa && strcmp(isa, "avx512") == 0)
        k = llmrt_cpu_q4_kernels_avx512();
    else if (isa && strcmp(isa, "avx2") == 0)
        k = llmrt_cpu_q4_kernels_avx2();
    return k.isa ? k : llmrt_cpu_q4_kernels_generic();
}
