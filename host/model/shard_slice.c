/* Cutting a rank's slice out of a full weight (shard_slice.h). Sizes use the overflow-checked
 * helpers; messages say what failed and the caller prefixes the file and tensor. */
#include "shard_slice.h"

#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../format/ggml_quants.h"

/* Group size granularity of a padded 4-bit slice: the widest block any backend's 4-bit kernels
 * need (the CPU's 32-column blocks). */
#define Q4_SLICE_ALIGN 32

/* The largest llmrt_dtype_block_elems: a K-quant super-block. */
#define MAX_BLOCK_ELEMS 256

/* --------------------------------------------------------------------------------------------- */
/* dense (F32/F16/BF16, GGUF blocks along K: Q8_0, Q5_0/Q5_1, K-quants)                          */
/* --------------------------------------------------------------------------------------------- */

/* Bytes of one row of `cols` elements of `dtype`; false when cols is not whole blocks. */
static bool row_bytes_of(llmrt_dtype dtype, int64_t cols, uint64_t *out) {
    int64_t be = llmrt_dtype_block_elems(dtype), bb = llmrt_dtype_block_bytes(dtype);
    if (be <= 0 || bb <= 0 || cols < 0 || cols % be != 0) return false;
    return ck_mul_u64((uint64_t)(cols / be), (uint64_t)bb, out);
}

llmrt_status llmrt_slice_host_rows(const llmrt_host_tensor *t, int64_t r0, int64_t n,
                                   llmrt_host_tensor *out, llmrt_error *err) {
    uint64_t row_bytes, offset;
    if (r0 < 0 || n < 1 || r0 > t->rows - n)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "row slice [%lld, +%lld) outside %lld rows",
                         (long long)r0, (long long)n, (long long)t->rows);
    if (!row_bytes_of(t->dtype, t->cols, &row_bytes) ||
        !ck_mul_u64(row_bytes, (uint64_t)r0, &offset))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s rows of %lld columns cannot be sliced",
                         llmrt_dtype_name(t->dtype), (long long)t->cols);
    *out      = *t;
    out->rows = n;
    out->data = (const uint8_t *)t->data + offset;
    return LLMRT_OK;
}

llmrt_status llmrt_slice_host_cols(struct llmrt_rank_model *m, const llmrt_host_tensor *t, int64_t c0,
                                   int64_t n, llmrt_host_tensor *out, llmrt_error *err) {
    if (c0 < 0 || n < 1 || c0 > t->cols - n)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "column slice [%lld, +%lld) outside %lld columns",
                         (long long)c0, (long long)n, (long long)t->cols);
    int64_t     blk     = llmrt_dtype_block_elems(t->dtype);
    bool        blocked = blk > 1;
    bool        aligned = c0 % blk == 0 && n % blk == 0;
    llmrt_dtype dtype   = blocked && !aligned ? LLMRT_DTYPE_F32 : t->dtype;
    /* Q5_0/Q5_1/K-quant blocks are cut only between blocks: a slice inside one would need the
     * whole block's scales (the loader's error adds the tensor, tp and rank) */
    bool cut_ok = t->dtype == LLMRT_DTYPE_Q8_0 || t->dtype == LLMRT_DTYPE_Q8_Z;
    if (blocked && !cut_ok && !aligned)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s matrix split by input columns [%lld, +%lld): tensor parallel slices "
                         "of %s must be whole %lld-column blocks", llmrt_dtype_name(t->dtype),
                         (long long)c0, (long long)n, llmrt_dtype_name(t->dtype), (long long)blk);
    uint64_t src_row, dst_row, bytes;
    if (!row_bytes_of(t->dtype, t->cols, &src_row) || !row_bytes_of(dtype, n, &dst_row) ||
        !ck_mul_u64(dst_row, (uint64_t)t->rows, &bytes) || bytes > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "column slice of %lld rows is too large",
                         (long long)t->rows);
    /* 64-byte aligned: the CPU backend then uses an f32 slice in place (it copies misaligned
     * f32 rows); freed with free() like the rest */
    void *mem = NULL;
    if (posix_memalign(&mem, 64, bytes ? (size_t)bytes : 1) != 0)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory slicing columns");
    uint8_t *buf = mem;
    const uint8_t *src = t->data;
    for (int64_t r = 0; r < t->rows; r++, src += src_row) {
        uint8_t *dst = buf + (uint64_t)r * dst_row;
        if (!blocked) { /* plain types: a contiguous run of each row */
            int64_t eb = llmrt_dtype_block_bytes(t->dtype);
            memcpy(dst, src + c0 * eb, (size_t)(n * eb));
        } else if (aligned) { /* whole blocks (Q8_0, Q5_x, K-quants) */
            memcpy(dst, src + (c0 / blk) * llmrt_dtype_block_bytes(t->dtype), (size_t)dst_row);
        } else { /* cut inside a block (Q8_0, Q8_Z): fp32 of the wanted columns, each block
                  * dequantised as the format's kernels do (Q8_0 w = d * q, Q8_Z w = d * (q - z):
                  * exact in fp32) */
            float  *f = (float *)dst;
            float   block[MAX_BLOCK_ELEMS];
            int64_t bb = llmrt_dtype_block_bytes(t->dtype);
            for (int64_t j = 0; j < n;) {
                int64_t c = c0 + j, in = c % blk, take = blk - in < n - j ? blk - in : n - j;
                llmrt_ggml_dequant_block(t->dtype, src + (c / blk) * bb, block);
                memcpy(f + j, block + in, (size_t)take * sizeof *f);
                j += take;
            }
        }
    }
    LLMRT_TRY(llmrt_model_keep_host(m, buf, err));
    *out = (llmrt_host_tensor){.dtype = dtype, .rows = t->rows, .cols = n, .data = buf};
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* 4-bit (q4.h)                                                                                   */
/* --------------------------------------------------------------------------------------------- */

void llmrt_q4_slice_rows(llmrt_q4_tensor *t, int64_t r0, int64_t n) {
    llmrt_q4_host *q = &t->q;
    int64_t        G = q->cols / q->group_size;
    q->qs += r0 * (q->cols / 2);
    q->scales += r0 * G;
    if (q->zeros) q->zeros += r0 * G;
    if (q->offsets) q->offsets += r0 * G;
    q->rows = n;
    if (t->bias) memmove(t->bias, t->bias + r0, (size_t)n * sizeof *t->bias);
}

static int nibble_at(const uint8_t *row, int64_t col) {
    return (row[col >> 1] >> (4 * (col & 1))) & 0x0f;
}

llmrt_status llmrt_q4_slice_cols(const llmrt_q4_tensor *in, int64_t c0, int64_t n,
                                 llmrt_q4_tensor *out, llmrt_error *err) {
    const llmrt_q4_host *q = &in->q;
    int64_t              N = q->rows, K = q->cols, gs = q->group_size, G = K / gs;
    if (c0 < 0 || n < 1 || c0 > K - n)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "column slice [%lld, +%lld) outside %lld columns",
                         (long long)c0, (long long)n, (long long)K);
    /* bucket sizes: the slice's columns in each stored group */
    int64_t *bucket = calloc((size_t)G, sizeof *bucket);
    if (!bucket) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory slicing columns");
    for (int64_t j = 0; j < K; j++) {
        int64_t orig = q->perm ? q->perm[j] : j;
        if (orig >= c0 && orig < c0 + n) bucket[j / gs]++;
    }
    int64_t lgs = 0, lG = 0, max_bucket = 0;
    bool    even = true;
    for (int64_t g = 0; g < G; g++) {
        if (!bucket[g]) continue;
        if (!lgs) lgs = bucket[g];
        even = even && bucket[g] == lgs;
        if (bucket[g] > max_bucket) max_bucket = bucket[g];
        lG++;
    }
    /* Local groups of one size L: the buckets themselves when they are equal and a multiple of
     * the kernels' block, else every bucket padded to L = max bucket rounded up to the block
     * with columns of perm -1 (input 0). */
    bool    pad = !(even && lgs % Q4_SLICE_ALIGN == 0);
    int64_t L   = pad ? (max_bucket + Q4_SLICE_ALIGN - 1) / Q4_SLICE_ALIGN * Q4_SLICE_ALIGN : lgs;
    int64_t Kl  = lG * L; /* local K */
    if (L > INT32_MAX || Kl > INT32_MAX) {
        free(bucket);
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "column slice of %lld columns is too large",
                         (long long)Kl);
    }

    /* one allocation: qs [N, Kl/2], scales [N, lG] fp16, zero terms [N, lG] (u8 or fp16),
     * perm [Kl], bias [N] */
    uint64_t qs_b, g_el, sc_b, z_b, total;
    if (!ck_mul_u64((uint64_t)N, (uint64_t)Kl / 2, &qs_b) ||
        !ck_mul_u64((uint64_t)N, (uint64_t)lG, &g_el) || !ck_mul_u64(g_el, 2, &sc_b) ||
        !ck_mul_u64(g_el, q->zero_kind == LLMRT_Q4_ZERO_INT ? 1 : 2, &z_b) ||
        !ck_add_u64(qs_b, sc_b, &total) || !ck_add_u64(total, z_b, &total) ||
        !ck_add_u64(total, (uint64_t)Kl * 4 + 16, &total) || total > (uint64_t)SIZE_MAX / 2) {
        free(bucket);
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "column slice of %lld rows is too large",
                         (long long)N);
    }
    uint8_t *mem  = calloc(1, (size_t)total);
    float   *bias = in->bias ? malloc((size_t)N * sizeof *bias) : NULL;
    int64_t *src  = malloc((size_t)Kl * sizeof *src); /* stored column of each local column */
    int64_t *grp  = malloc((size_t)lG * sizeof *grp); /* original group of each local group */
    if (!mem || (in->bias && !bias) || !src || !grp) {
        free(mem), free(bias), free(src), free(grp), free(bucket);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory slicing columns");
    }
    uint8_t  *qs     = mem;
    uint16_t *scales = (uint16_t *)(mem + ((qs_b + 1) & ~(uint64_t)1));
    uint8_t  *zeros  = (uint8_t *)(scales + g_el); /* or fp16 offsets */
    int32_t  *perm   = (int32_t *)(((uintptr_t)(zeros + z_b) + 3) & ~(uintptr_t)3);

    /* local columns: the non-empty groups in stored order, each its columns in stored order,
     * then its padding (src -1: nibble 0; perm -1: input 0) */
    bool    natural = !pad;
    int64_t jl = 0, gl = 0;
    for (int64_t g = 0; g < G; g++) {
        if (!bucket[g]) continue;
        grp[gl++] = g;
        for (int64_t j = g * gs; j < (g + 1) * gs; j++) {
            int64_t orig = q->perm ? q->perm[j] : j;
            if (orig < c0 || orig >= c0 + n) continue;
            src[jl]  = j;
            perm[jl] = (int32_t)(orig - c0);
            natural  = natural && perm[jl] == jl;
            jl++;
        }
        for (; jl < gl * L; jl++) {
            src[jl]  = -1;
            perm[jl] = -1;
        }
    }
    for (int64_t r = 0; r < N; r++) {
        const uint8_t *row = q->qs + r * (K / 2);
        uint8_t       *dst = qs + r * (Kl / 2);
        for (int64_t j = 0; j < Kl; j++)
            if (src[j] >= 0) dst[j >> 1] |= (uint8_t)(nibble_at(row, src[j]) << (4 * (j & 1)));
        for (int64_t g = 0; g < lG; g++) {
            scales[r * lG + g] = q->scales[r * G + grp[g]];
            if (q->zero_kind == LLMRT_Q4_ZERO_INT) zeros[r * lG + g] = q->zeros[r * G + grp[g]];
            else ((uint16_t *)zeros)[r * lG + g] = q->offsets[r * G + grp[g]];
        }
    }
    if (bias) memcpy(bias, in->bias, (size_t)N * sizeof *bias);
    free(src), free(grp), free(bucket);
    out->mem  = mem;
    out->bias = bias;
    out->q    = (llmrt_q4_host){
           .rows       = N,
           .cols       = Kl,
           .group_size = (int32_t)L,
           .zero_kind  = q->zero_kind,
           .qs         = qs,
           .scales     = scales,
           .zeros      = q->zero_kind == LLMRT_Q4_ZERO_INT ? zeros : NULL,
           .offsets    = q->zero_kind == LLMRT_Q4_ZERO_INT ? NULL : (const uint16_t *)zeros,
           .perm       = natural ? NULL : perm,
           .x_cols     = n,
    };
    return LLMRT_OK;
}
