/* The CPU backend: fp32 activations; f32/f16/bf16 and GGUF Q8_0 weights read in place (from the
 * file mapping when the file holds them in that form); 4-bit weights (model/q4.h) repacked at
 * load into the layout of q4_kernels.h. It is the correctness reference for every other backend
 * and a real backend for small models: matmuls and attention run on a thread pool with SIMD inner
 * loops chosen at start-up (cpu_kernels.h, q4_kernels.h).
 *
 * Matmul: tasks of 24 weight rows. Up to FUSED_MAX_T tokens (decode, small batches), Q8_0 and
 * 4-bit rows are dequantised in registers by fused kernels, 4 rows x 4 tokens at a time; larger
 * batches dequantise the task's rows once into fp32 scratch and run the fp32 tiles over them.
 * f16 / bf16 rows likewise: widened in registers up to HALF_FUSED_MAX_T tokens where the ISA
 * has a dot_tile_h (AVX2, AVX-512), else converted into scratch.
 * Both give the same bits (q4_kernels.h). The fused kernels need no scratch, so their tasks are
 * larger (about 4 per thread): a decode step runs ~200 matmuls of a few tens of µs, and taking
 * 16-row tasks from one shared counter cost as much as the second core gained.
 *
 * GPTQ 8-bit weights come as Q8_0 or the internal Q8_Z (read in place with the packed-block
 * kernels, kq_kernels.h); act-order ones through weight_upload_permuted, x then gathered into
 * stored column order (xperm) before the matmul, as for act-order 4-bit weights.
 *
 * Reduced precision, opt-in (llmrt_cpu_options): int8 activations for 4-bit, Q8_0 and Q8_Z weights on
 * AVX512-VNNI or AVX2 (i8_gemm.h: panels repacked at load, x quantised once per matmul, per 32
 * columns), for Q5_0 / Q5_1 read in place with those activations, and for Q4_K / Q5_K / Q6_K read
 * in place (kq_q8_kernels.h: x per 256 columns); each AVX512-VNNI, AVX2 or portable; and bf16 weights and
 * activations for f32/f16/bf16 weights on AVX512-BF16 (bf16_gemm.h: 32-row panels repacked at
 * load, x rounded once per matmul). Why the exact fp32 path has no separate GEMM kernel: its 4x4
 * tiles already run at the fp32 FMA rate of the core (~90 GFLOP/s on Zen 4, one zmm FMA per
 * cycle; tests/tools/cpu_gemm_bench --peak), so batches go faster only with cheaper arithmetic.
 *
 * Determinism: every output element is computed by one task with a fixed reduction order, so the
 * result of a token never depends on the batch it is in or on the number of threads (in the
 * reduced-precision modes too, which are used at every batch size). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/half.h"
#include "../../core/log.h"
#include "../../core/thread_pool.h"
#include "../backend.h"
#include "../../format/kv_quant.h"
#include "attention_cpu.h"
#include "cpu_kernels.h"
#include "cpu_memory.h"
#include "bf16_gemm.h"
#include "i8_gemm.h"
#include "kq_kernels.h"
#include "kq_q8_kernels.h"
#include "../../format/ggml_quants.h"
#include "lora_cpu.h"
#include "q4_kernels.h"
#include "elementwise_cpu.h"

#define MATMUL_ROWS_PER_TASK 16 /* rows per task of the fused kernels: LLMRT_CPU_I8_PANEL     */
/* Rows per task of the fp32 tile path (and of the wconv scratch): a multiple of every ISA's
 * tile_rows (3 on AVX2, 4 otherwise), so no task ends in a narrower, slower tile. */
#define TILE_ROWS_PER_TASK 24
#define MATMUL_TOKENS_BLOCK  64 /* activation rows kept hot in L2 while a weight chunk is reused */
/* Token counts up to which Q8_0 / 4-bit matmuls run the fused kernels (dequantisation in
 * registers, redone per 4 tokens); above, a task's rows are dequantised once into fp32 scratch
 * for the fp32 tiles. Measured crossover on Zen 4 (SmolLM2 shapes): ~32-64 tokens. The two
 * paths give identical bits, so the choice is free. */
#define FUSED_MAX_T 32
/* Token counts up to which f16 / bf16 weights are widened in registers (dot_tile_h) instead of
 * converted into scratch once per task for the fp32 tiles (same bits either way). Zen 3, bf16,
 * 1536 x 576, 1 thread, widened / converted GFLOP/s: 1 token 26 / 12, 2: 50 / 24, 4: 48 / 43,
 * 8: 53 / 58, 16: 55 / 67. */
#define HALF_FUSED_MAX_T 4

typedef struct cpu_ctx {
    llmrt_thread_pool   *pool;
    llmrt_cpu_kernels    k;
    llmrt_cpu_q4_kernels q4k; /* 4-bit kernels of the same ISA (bit-identical to k.dot_tile) */
    llmrt_cpu_kq_kernels kqk; /* packed GGUF block kernels (Q5_x, K-quants), same ISA */
    int                  n_threads;
    /* LLMRT_CPU_MATMUL_INT8: int8 kernels (i8k.isa == NULL: unavailable, the fp32 path stays)
     * and the batch's quantised activations, sized by begin_batch */
    llmrt_cpu_i8_kernels i8k;
    llmrt_cpu_xq         xq;
    int64_t              xq_cap; /* bytes of xq.q */
    /* ... and for Q4_K / Q5_K / Q6_K weights: int8 activations per 256 columns (kq_q8_kernels.h;
     * kq8k.isa == NULL: not int8 mode) */
    llmrt_cpu_kq8_kernels kq8k;
    llmrt_cpu_xq8k        xk;
    int64_t               xk_cap; /* bytes of xk.q */
    /* int8 panels of the Q8_0 and Q8_Z matrices, found by address: the loader makes row views of the
     * embedding table (a tied lm_head, or its vocab-parallel slice), which share its rows and
     * so its panels (at a row offset), and must not own anything */
    struct q8_panels {
        const uint8_t *data;  /* the uploaded rows */
        llmrt_dtype    dtype; /* Q8_0 or Q8_Z */
        int64_t        rows, cols;
        llmrt_cpu_i8w  w;
    }      *q8;
    int32_t n_q8, q8_cap;
    /* bf16 matmuls (llmrt_cpu_options.bf16_activations): kernels (isa NULL: off), the batch's
     * activations rounded to bf16 (rows of kp, sized by begin_batch), and the bf16 panels of the
     * f32/f16/bf16 matrices, found by address like the Q8_0 ones (row views share them) */
    llmrt_cpu_bf16_kernels bf16k;
    uint16_t              *xbf;
    int64_t                xbf_cap; /* elements */
    struct bf16_panels {
        const void     *data; /* the uploaded rows */
        llmrt_dtype     dtype;
        int64_t         rows, cols;
        llmrt_cpu_bf16w w;
    }      *bfp;
    int32_t n_bfp, bfp_cap;

    /* 64-byte aligned copies of the f32 matrices uploaded from misaligned memory (safetensors
     * places tensors 8-byte aligned): the AVX-512 tiles load 64 bytes at a time, and a load
     * across two cache lines halves their rate. The weight's data points at the copy. */
    float **f32_copies;
    int32_t n_f32_copies, f32_copies_cap;

    /* per-thread scratch */
    float  **wconv;       /* [n_threads][TILE_ROWS_PER_TASK * max_k] converted weight rows */
    int64_t  wconv_k;     /* K capacity of wconv */
    llmrt_cpu_attn attn;  /* tiled attention: its kernel, scratch and tile list */
    /* SwiGLU's element kernel: exact (exp_exact.h; AVX2 where the CPU has it, the same bits)
     * unless a bf16 / int8 matmul mode is on and the ISA has a fast one (elementwise_cpu.h) */
    llmrt_cpu_swiglu_fn swiglu;
    llmrt_cpu_rmsnorm4_fn rms4; /* rmsnorm 4 rows at once (or NULL: one at a time) */

    /* act-order weights (4-bit, and block types through weight_upload_permuted, whose bweight's
     * aux is then the malloc'd perm int32 [cols]): x gathered into stored column order */
    float  *xperm;        /* [xperm_cap] */
    int64_t xperm_cap;
    int64_t perm_k_max;   /* largest K of an uploaded weight with a permutation */

    /* rope */
    float  *inv_freq;     /* [half] */
    int32_t half_dim;

    /* current batch (owned copies) */
    int32_t  n_tokens, n_seqs, max_blocks, n_outputs;
    int32_t *tokens, *positions, *seq_of, *block_tables, *output_rows;
    int64_t *slots;
    float   *rope_cos, *rope_sin; /* [T, half] */
    int64_t  batch_cap, tables_cap, outputs_cap;
    /* the batch's LoRA slot and scale per token (has_lora false: no adapter in the batch) */
    int32_t *lora_slot;
    float   *lora_scale;
    int64_t  lora_cap;
    bool     has_lora;
} cpu_ctx;

static cpu_ctx *ctx_of(llmrt_backend *be) {
    return (cpu_ctx *)be->ctx;
}

/* --------------------------------------------------------------------------------------------- */
/* memory                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status cpu_alloc(llmrt_backend *be, uint64_t bytes, void **out, llmrt_error *err) {
    /* 64-byte alignment for full-width vector loads; calloc-like zeroing keeps results defined */
    uint64_t rounded = (bytes + 63) & ~(uint64_t)63;
    void    *p       = NULL;
    if (rounded < bytes || rounded > SIZE_MAX ||
        !(p = llmrt_cpu_mem_alloc(rounded ? (size_t)rounded : 64)))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %llu bytes",
                         (unsigned long long)bytes);
    memset(p, 0, (size_t)rounded);
    *out = p;
    return LLMRT_OK;
}

static void cpu_free(llmrt_backend *be, void *ptr) {
    llmrt_cpu_mem_free(ptr);
}

static llmrt_status cpu_upload(llmrt_backend *be, void *dst, const void *host, uint64_t bytes,
                               llmrt_error *err) {
    memcpy(dst, host, (size_t)bytes);
    return LLMRT_OK;
}

static llmrt_status cpu_copy(llmrt_backend *be, void *dst, const void *src, uint64_t bytes,
                             llmrt_error *err) {
    (void)be;
    (void)err;
    memcpy(dst, src, (size_t)bytes);
    return LLMRT_OK;
}

static llmrt_status cpu_download_f32(llmrt_backend *be, float *host, const void *act, int64_t n,
                                     llmrt_error *err) {
    memcpy(host, act, (size_t)n * sizeof(float));
    return LLMRT_OK;
}

/* Q8_0 (GGUF blocks, rows of K/32 blocks of 34 bytes, K % 32 == 0) is read in place too, and so
 * are Q5_0/Q5_1 and the K-quants (kq_kernels.h, K a multiple of their block): the GGUF loader
 * hands over embedding tables and matrices stored that way. */
static bool cpu_supports_weight(const llmrt_backend *be, llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_F32 || dtype == LLMRT_DTYPE_F16 || dtype == LLMRT_DTYPE_BF16 ||
           dtype == LLMRT_DTYPE_Q8_0 || llmrt_ggml_is_packed(dtype);
}


/* Everything the CPU has kernels for: f32/f16/bf16 matrices, Q8_0 with K % 32 == 0, 4-bit
 * matrices whose K and group size are multiples of the nibble block (q4_kernels.h), and the
 * attention of any head dim (one tiled online-softmax fp32 kernel, attention_cpu.h; the
 * FLASH_ATTENTION op names the GPU's separate tensor-core kernels). */
static bool cpu_supports(const llmrt_backend *be, const llmrt_op_query *q, char *why, size_t cap) {
    if (why && cap) why[0] = 0;
    switch (q->op) {
    case LLMRT_BOP_MATMUL:
        if (q->dtype == LLMRT_DTYPE_Q4) {
            if (q->k % LLMRT_CPU_Q4_BLOCK != 0 || q->group_size % LLMRT_CPU_Q4_BLOCK != 0)
                return llmrt_backend_decline(why, cap,
                               "the cpu 4-bit kernels need K (%lld) and the group size (%lld) to "
                               "be multiples of 32",
                               (long long)q->k, (long long)q->group_size);
            return true;
        }
        /* has_perm for a block or dense type: weight_upload_permuted gathers x (any dtype) */
        if ((q->dtype == LLMRT_DTYPE_Q8_0 || llmrt_ggml_is_packed(q->dtype)) &&
            q->k % llmrt_dtype_block_elems(q->dtype) != 0)
            return llmrt_backend_decline(why, cap, "%s weight with %lld columns (a multiple of %d "
                           "needed)", llmrt_dtype_name(q->dtype), (long long)q->k,
                           llmrt_dtype_block_elems(q->dtype));
        if (!cpu_supports_weight(be, q->dtype))
            return llmrt_backend_decline(why, cap, "weight dtype %s not supported", llmrt_dtype_name(q->dtype));
        return true;
    case LLMRT_BOP_ATTENTION:
        if (q->kv_dtype != LLMRT_DTYPE_INVALID && q->kv_dtype != LLMRT_DTYPE_F32 &&
            q->kv_dtype != LLMRT_DTYPE_BF16 && !llmrt_kv_dtype_is_8bit(q->kv_dtype))
            return llmrt_backend_decline(why, cap, "KV cache dtype %s not supported (f32, bf16, "
                                         "i8, f8_e4m3)", llmrt_dtype_name(q->kv_dtype));
        return q->head_dim > 0;
    case LLMRT_BOP_FLASH_ATTENTION:
        return llmrt_backend_decline(why, cap, "the cpu backend has one attention kernel");
    }
    return llmrt_backend_decline(why, cap, "unknown op %d", (int)q->op);
}

static llmrt_status grow_wconv(cpu_ctx *c, int64_t K, llmrt_error *err) {
    if (K <= c->wconv_k) return LLMRT_OK;
    for (int t = 0; t < c->n_threads; t++) {
        free(c->wconv[t]);
        c->wconv[t] = NULL;
        if (posix_memalign((void **)&c->wconv[t], 64,
                           (size_t)K * TILE_ROWS_PER_TASK * sizeof(float)) != 0) {
            c->wconv_k = 0;
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
    }
    c->wconv_k = K;
    return LLMRT_OK;
}

/* A growable array (n used of *cap; first capacity `first`) with room for one more element: arr
 * itself or its reallocation (*cap updated); NULL when out of memory (arr unchanged). */
static void *room_for_one(void *arr, int32_t *cap, int32_t n, size_t elem, int32_t first) {
    if (n < *cap) return arr;
    int32_t c = *cap ? 2 * *cap : first;
    void   *p = realloc(arr, (size_t)c * elem);
    if (p) *cap = c;
    return p;
}

/* Points w (f32, rows contiguous) at a 64-byte aligned copy of its rows, owned by the backend
 * (freed by weight_free). Row views of w (a tied lm_head) are offsets into the copy. */
static llmrt_status align_f32_weight(cpu_ctx *c, llmrt_bweight *w, llmrt_error *err) {
    size_t bytes;
    if (__builtin_mul_overflow((size_t)w->rows, (size_t)w->cols, &bytes) ||
        __builtin_mul_overflow(bytes, sizeof(float), &bytes))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu backend: f32 weight of %lld x %lld "
                         "overflows", (long long)w->rows, (long long)w->cols);
    void *room =
        room_for_one(c->f32_copies, &c->f32_copies_cap, c->n_f32_copies, sizeof *c->f32_copies, 16);
    if (!room) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    c->f32_copies = room;
    float *copy = llmrt_cpu_mem_alloc(bytes ? bytes : 1);
    if (!copy)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory (aligned "
                         "copy of a %lld x %lld f32 weight)", (long long)w->rows,
                         (long long)w->cols);
    memcpy(copy, w->data, bytes);
    llmrt_cpu_mem_page_out(w->data, bytes); /* the source is not read again */
    c->f32_copies[c->n_f32_copies++] = copy;
    w->data = copy;
    return LLMRT_OK;
}

static llmrt_status cpu_weight_upload(llmrt_backend *be, llmrt_dtype dtype, int64_t rows,
                                      int64_t cols, const void *host, llmrt_bweight *out,
                                      llmrt_error *err) {
    if (!cpu_supports_weight(be, dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "cpu backend: weight dtype %s not supported",
                         llmrt_dtype_name(dtype));
    if ((dtype == LLMRT_DTYPE_Q8_0 || llmrt_ggml_is_packed(dtype)) &&
        cols % llmrt_dtype_block_elems(dtype) != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cpu backend: %s weight with %lld columns (a multiple of %d needed)",
                         llmrt_dtype_name(dtype), (long long)cols, llmrt_dtype_block_elems(dtype));
    /* scratch for converting TILE_ROWS_PER_TASK rows of this K is sized here, not per step */
    LLMRT_TRY(grow_wconv(ctx_of(be), cols, err));
    *out = (llmrt_bweight){.dtype = dtype, .rows = rows, .cols = cols, .data = (void *)host};
    cpu_ctx *c = ctx_of(be);
    if (dtype == LLMRT_DTYPE_F32 && !c->bf16k.isa && (uintptr_t)host % 64 != 0)
        LLMRT_TRY(align_f32_weight(c, out, err));
    if ((dtype == LLMRT_DTYPE_Q8_0 || dtype == LLMRT_DTYPE_Q8_Z) && c->i8k.isa) {
        /* int8 mode: panels next to the rows, which embed() still reads in place */
        void *room = room_for_one(c->q8, &c->q8_cap, c->n_q8, sizeof *c->q8, 4);
        if (!room) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        c->q8 = room;
        struct q8_panels *e = &c->q8[c->n_q8];
        *e = (struct q8_panels){.data = host, .dtype = dtype, .rows = rows, .cols = cols};
        if (dtype == LLMRT_DTYPE_Q8_0)
            LLMRT_TRY(llmrt_cpu_i8w_from_q8_0(host, rows, cols, &e->w, err));
        else
            LLMRT_TRY(llmrt_cpu_i8w_from_q8_z(host, rows, cols, &e->w, err));
        c->n_q8++;
    }
    if (c->bf16k.isa && (dtype == LLMRT_DTYPE_F32 || dtype == LLMRT_DTYPE_F16 ||
                         dtype == LLMRT_DTYPE_BF16)) {
        /* bf16 mode: panels next to the rows, which embed() still reads in place */
        void *room = room_for_one(c->bfp, &c->bfp_cap, c->n_bfp, sizeof *c->bfp, 16);
        if (!room) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        c->bfp = room;
        struct bf16_panels *e = &c->bfp[c->n_bfp];
        *e = (struct bf16_panels){.data = host, .dtype = dtype, .rows = rows, .cols = cols};
        LLMRT_TRY(llmrt_cpu_bf16w_pack(dtype, host, rows, cols, &e->w, err));
        c->n_bfp++;
    }
    return LLMRT_OK;
}

static void free_q4(llmrt_cpu_q4 *q) {
    if (q->i8) llmrt_cpu_i8w_free(q->i8);
    free(q->i8);
    llmrt_cpu_q4_free(q);
    free(q);
}

/* 4-bit weights are repacked into the CPU layout (q4_kernels.h); `data` points at the packed
 * nibbles and `aux` at the llmrt_cpu_q4 that owns them. */
static llmrt_status cpu_weight_upload_q4(llmrt_backend *be, const llmrt_q4_host *host,
                                         llmrt_bweight *out, llmrt_error *err) {
    cpu_ctx      *c = ctx_of(be);
    llmrt_cpu_q4 *q = calloc(1, sizeof *q);
    if (!q) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    llmrt_status s = llmrt_cpu_q4_pack(host, q, err);
    if (s == LLMRT_OK) s = grow_wconv(c, host->cols, err);
    if (s == LLMRT_OK && c->i8k.isa) {
        /* int8 mode: the panels as well (the fp32 path keeps the 4-bit layout) */
        q->i8 = calloc(1, sizeof *q->i8);
        s     = q->i8 ? llmrt_cpu_i8w_from_q4(q, c->i8k.f16_pairs, q->i8, err)
                      : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    if (s != LLMRT_OK) {
        free_q4(q);
        return s;
    }
    if (q->perm && q->cols > c->perm_k_max) c->perm_k_max = q->cols;
    *out = (llmrt_bweight){.dtype = LLMRT_DTYPE_Q4, .rows = host->rows, .cols = host->cols,
                           .data = q->data, .aux = q};
    return LLMRT_OK;
}

/* A weight stored in act-order (stored column j holds input column perm[j]): uploaded as
 * weight_upload does, with a copy of perm in aux; matmul gathers x into xperm for it. */
static llmrt_status cpu_weight_upload_permuted(llmrt_backend *be, llmrt_dtype dtype, int64_t rows,
                                               int64_t cols, const void *host,
                                               const int32_t *perm, llmrt_bweight *out,
                                               llmrt_error *err) {
    cpu_ctx *c = ctx_of(be);
    for (int64_t j = 0; j < cols; j++)
        if (perm[j] < 0 || perm[j] >= cols)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "cpu backend: perm[%lld] = %d is outside [0, %lld)", (long long)j,
                             perm[j], (long long)cols);
    int32_t *copy = malloc((size_t)cols * sizeof *copy);
    if (!copy) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    memcpy(copy, perm, (size_t)cols * sizeof *copy);
    llmrt_status s = cpu_weight_upload(be, dtype, rows, cols, host, out, err);
    if (s != LLMRT_OK) {
        free(copy);
        return s;
    }
    out->aux = copy;
    if (cols > c->perm_k_max) c->perm_k_max = cols;
    return LLMRT_OK;
}

static void cpu_weight_free(llmrt_backend *be, llmrt_bweight *w) {
    if (w->dtype == LLMRT_DTYPE_Q4 && w->aux) free_q4(w->aux);
    else free(w->aux); /* a permuted weight's perm */
    cpu_ctx *c = ctx_of(be);
    for (int32_t i = 0; (w->dtype == LLMRT_DTYPE_Q8_0 || w->dtype == LLMRT_DTYPE_Q8_Z) &&
                        i < c->n_q8;
         i++)
        if (c->q8[i].data == w->data && c->q8[i].rows == w->rows && c->q8[i].dtype == w->dtype) {
            llmrt_cpu_i8w_free(&c->q8[i].w);
            c->q8[i] = c->q8[--c->n_q8];
            break;
        }
    for (int32_t i = 0; i < c->n_bfp; i++)
        if (c->bfp[i].data == w->data && c->bfp[i].dtype == w->dtype && c->bfp[i].rows == w->rows) {
            llmrt_cpu_bf16w_free(&c->bfp[i].w);
            c->bfp[i] = c->bfp[--c->n_bfp];
            break;
        }
    for (int32_t i = 0; w->dtype == LLMRT_DTYPE_F32 && i < c->n_f32_copies; i++)
        if (c->f32_copies[i] == w->data) {
            llmrt_cpu_mem_free(c->f32_copies[i]);
            c->f32_copies[i] = c->f32_copies[--c->n_f32_copies];
            break;
        }
    memset(w, 0, sizeof *w); /* the model owns the host memory of the other dtypes */
}

static llmrt_status cpu_rope_init(llmrt_backend *be, const float *inv_freq, int32_t half_dim,
                                  llmrt_error *err) {
    cpu_ctx *c = ctx_of(be);
    free(c->inv_freq);
    c->inv_freq = malloc((size_t)half_dim * sizeof(float));
    if (!c->inv_freq) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    memcpy(c->inv_freq, inv_freq, (size_t)half_dim * sizeof(float));
    c->half_dim = half_dim;
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* batch                                                                                         */
/* --------------------------------------------------------------------------------------------- */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 1;
    void *n = realloc(*p, (size_t)need * elem);
    if (!n) return 0;
    *p   = n;
    *cap = need;
    return 1;
}

/* Per-token arrays share one capacity; they are reallocated together. */
static int grow_token_arrays(cpu_ctx *c, int64_t T) {
    if (T <= c->batch_cap) return 1;
    size_t half = (size_t)c->half_dim;
    void  *a = realloc(c->tokens, (size_t)T * sizeof(int32_t));
    if (a) c->tokens = a;
    void *b = realloc(c->positions, (size_t)T * sizeof(int32_t));
    if (b) c->positions = b;
    void *d = realloc(c->seq_of, (size_t)T * sizeof(int32_t));
    if (d) c->seq_of = d;
    void *e = realloc(c->slots, (size_t)T * sizeof(int64_t));
    if (e) c->slots = e;
    void *f = realloc(c->rope_cos, (size_t)T * half * sizeof(float) + 1);
    if (f) c->rope_cos = f;
    void *g = realloc(c->rope_sin, (size_t)T * half * sizeof(float) + 1);
    if (g) c->rope_sin = g;
    if (!a || !b || !d || !e || !f || !g) return 0;
    c->batch_cap = T;
    return 1;
}

static llmrt_status cpu_begin_batch(llmrt_backend *be, const llmrt_batch_plan *plan,
                                    llmrt_error *err) {
    cpu_ctx *c = ctx_of(be);
    int64_t  T = plan->n_tokens;
    if (!grow_token_arrays(c, T))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    int64_t n_table = (int64_t)plan->n_seqs * plan->max_blocks;
    if (!grow((void **)&c->block_tables, &c->tables_cap, n_table, sizeof(int32_t)) ||
        !grow((void **)&c->output_rows, &c->outputs_cap, plan->n_outputs, sizeof(int32_t)))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    memcpy(c->tokens, plan->tokens, (size_t)T * sizeof(int32_t));
    memcpy(c->positions, plan->positions, (size_t)T * sizeof(int32_t));
    memcpy(c->seq_of, plan->seq_of, (size_t)T * sizeof(int32_t));
    memcpy(c->slots, plan->slots, (size_t)T * sizeof(int64_t));
    memcpy(c->block_tables, plan->block_tables, (size_t)n_table * sizeof(int32_t));
    if (plan->n_outputs > 0) /* a step of prompt chunks asks for no logits rows */
        memcpy(c->output_rows, plan->output_rows, (size_t)plan->n_outputs * sizeof(int32_t));
    c->n_tokens   = (int32_t)T;
    c->n_seqs     = plan->n_seqs;
    c->max_blocks = plan->max_blocks;
    c->n_outputs  = plan->n_outputs;
    c->has_lora   = plan->lora_slot && plan->lora_scale;
    if (c->has_lora) {
        /* both grow from the shared capacity; it advances only when both did */
        int64_t cap_slot = c->lora_cap, cap_scale = c->lora_cap;
        int     ok = grow((void **)&c->lora_slot, &cap_slot, T, sizeof(int32_t)) &&
                 grow((void **)&c->lora_scale, &cap_scale, T, sizeof(float));
        if (ok) c->lora_cap = cap_slot;
        if (!ok)
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        memcpy(c->lora_slot, plan->lora_slot, (size_t)T * sizeof(int32_t));
        memcpy(c->lora_scale, plan->lora_scale, (size_t)T * sizeof(float));
    }

    /* Angles in fp32 as HF computes them (position * inv_freq), cos/sin of that angle. */
    for (int64_t t = 0; t < T; t++) {
        int32_t pos = c->positions[t];
        for (int32_t i = 0; i < c->half_dim; i++) {
            float angle                        = (float)pos * c->inv_freq[i];
            c->rope_cos[t * c->half_dim + i] = (float)cos((double)angle);
            c->rope_sin[t * c->half_dim + i] = (float)sin((double)angle);
        }
    }
    if (c->perm_k_max > 0 && T * c->perm_k_max > c->xperm_cap) {
        free(c->xperm);
        c->xperm_cap = 0;
        size_t bytes = (size_t)(T * c->perm_k_max) * sizeof(float);
        if (posix_memalign((void **)&c->xperm, 64, bytes) != 0) {
            c->xperm = NULL;
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
        c->xperm_cap = T * c->perm_k_max;
    }
    if (c->i8k.isa && T * c->wconv_k > c->xq_cap) {
        /* int8 activations of the widest matrix (wconv_k: the largest K uploaded) */
        free(c->xq.q);
        free(c->xq.d);
        free(c->xq.s);
        int64_t blocks = T * c->wconv_k / 32;
        c->xq.q        = malloc((size_t)(T * c->wconv_k));
        c->xq.d        = malloc((size_t)blocks * sizeof(float));
        c->xq.s        = malloc((size_t)blocks * sizeof(float));
        c->xq_cap      = T * c->wconv_k;
        if (!c->xq.q || !c->xq.d || !c->xq.s) {
            c->xq_cap = 0;
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
    }
    if (c->kq8k.isa && T * c->wconv_k > c->xk_cap) {
        free(c->xk.q);
        free(c->xk.d);
        free(c->xk.bsums);
        int64_t n  = T * c->wconv_k;
        c->xk.q     = malloc((size_t)n);
        c->xk.d     = malloc((size_t)(n / LLMRT_CPU_KQ8_BLOCK + 1) * sizeof(float));
        c->xk.bsums = malloc((size_t)(n / 16 + 1) * sizeof(int16_t));
        c->xk_cap   = n;
        if (!c->xk.q || !c->xk.d || !c->xk.bsums) {
            c->xk_cap = 0;
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
    }
    if (c->bf16k.isa && T * (c->wconv_k + 1) > c->xbf_cap) {
        free(c->xbf);
        c->xbf_cap = 0;
        if (posix_memalign((void **)&c->xbf, 64, (size_t)(T * (c->wconv_k + 1)) * 2) != 0) {
            c->xbf = NULL;
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        }
        c->xbf_cap = T * (c->wconv_k + 1); /* rows of kp <= K + 1 */
    }
    /* attention scratch for this batch (head_dim = 2 * half_dim: Llama rotates whole heads) */
    return llmrt_cpu_attn_reserve(&c->attn, T, 2 * c->half_dim, err);
}

/* --------------------------------------------------------------------------------------------- */
/* element-wise ops                                                                              */
/* --------------------------------------------------------------------------------------------- */

static void row_to_f32(const cpu_ctx *c, float *dst, const llmrt_bweight *w, int64_t row) {
    int64_t K = w->cols;
    switch (w->dtype) {
    case LLMRT_DTYPE_F32: memcpy(dst, (const float *)w->data + row * K, (size_t)K * 4); break;
    case LLMRT_DTYPE_F16: c->k.f16_to_f32(dst, (const uint16_t *)w->data + row * K, K); break;
    case LLMRT_DTYPE_BF16: c->k.bf16_to_f32(dst, (const uint16_t *)w->data + row * K, K); break;
    case LLMRT_DTYPE_Q8_0:
        c->q4k.q8_dequant_row(dst, (const uint8_t *)w->data + row * (K / 32) * 34, K);
        break;
    default:
        if (llmrt_ggml_is_packed(w->dtype)) {
            int64_t row_bytes = K / llmrt_dtype_block_elems(w->dtype) *
                                llmrt_dtype_block_bytes(w->dtype);
            c->kqk.dequant_row(w->dtype, dst, (const uint8_t *)w->data + row * row_bytes, K);
        } else {
            memset(dst, 0, (size_t)K * 4); /* unreachable: upload rejects other dtypes */
        }
        break;
    }
}

static void cpu_embed(llmrt_backend *be, void *out, const llmrt_bweight *table) {
    cpu_ctx *c = ctx_of(be);
    for (int32_t t = 0; t < c->n_tokens; t++)
        row_to_f32(c, (float *)out + (int64_t)t * table->cols, table, c->tokens[t]);
}

static void cpu_rmsnorm(llmrt_backend *be, void *out, const void *x, const void *w, int64_t D,
                        float eps) {
    cpu_ctx *c = ctx_of(be);
    llmrt_cpu_rmsnorm_rows(c->pool, c->rms4, out, x, w, c->n_tokens, D, eps);
}

static void cpu_add(llmrt_backend *be, void *x, const void *delta, int64_t D) {
    cpu_ctx *c = ctx_of(be);
    llmrt_cpu_add_rows(c->pool, x, delta, c->n_tokens, D);
}

static void cpu_add_rmsnorm(llmrt_backend *be, void *x, const void *delta, void *out,
                            const void *w, int64_t D, float eps) {
    cpu_ctx *c = ctx_of(be);
    llmrt_cpu_add_rmsnorm_rows(c->pool, c->rms4, x, delta, out, w, c->n_tokens, D, eps);
}

static void cpu_swiglu(llmrt_backend *be, void *out, const void *gate, const void *up, int64_t F) {
    cpu_ctx *c = ctx_of(be);
    llmrt_cpu_swiglu_rows(c->pool, c->swiglu, out, gate, up, c->n_tokens, F);
}

static void cpu_gather_outputs(llmrt_backend *be, void *out, const void *x, int64_t D) {
    cpu_ctx *c = ctx_of(be);
    for (int32_t i = 0; i < c->n_outputs; i++)
        memcpy((float *)out + i * D, (const float *)x + (int64_t)c->output_rows[i] * D,
               (size_t)D * sizeof(float));
}

/* --------------------------------------------------------------------------------------------- */
/* matmul: out[rows, N] = x[rows, K] · Wᵀ                                                       */
/* --------------------------------------------------------------------------------------------- */

typedef struct matmul_job {
    cpu_ctx             *c;
    float               *out;
    const float         *x;
    int64_t              rows;
    const llmrt_bweight *w;
    int64_t              rows_per_task; /* weight rows per task (matmul_prepare) */
    const llmrt_cpu_i8w *i8; /* int8 panels to use (x quantised into c->xq), or NULL */
    int64_t              i8_row0; /* row of the panels that is row 0 of w (a row view) */
    const llmrt_cpu_bf16w *bf16; /* bf16 panels to use (x rounded into c->xbf), or NULL */
    int64_t                bf16_row0; /* row of the panels that is row 0 of w (a row view) */
    bool                   kq8;  /* K-quant weights times c->xk (x quantised per 256 columns) */
    bool                   q5;   /* Q5_0 / Q5_1 weights times c->xq (x quantised per 32 columns) */
    bool                   half; /* f16 / bf16 weights widened in registers (k.dot_tile_h) */
} matmul_job;

/* out[t, n0 + r] for every token t and r < nn from nn fp32 weight rows (row stride K). Per
 * 4 tokens (their x stays in L1) the task's rows stream from L2 by the ISA's tile_rows: 5-30 %
 * faster than the rows outer on Zen 3 (most for K = 1536, whose 4 x rows and 3 W rows together
 * overflow L1). Fewer than 4 tokens (decode, a batch's last tokens) take 4 rows per call. */
static void matmul_rows_f32(const cpu_ctx *c, const matmul_job *j, int64_t n0, int64_t nn,
                            const float *wrows) {
    int64_t N = j->w->rows, K = j->w->cols;
    for (int64_t t0 = 0; t0 < j->rows; t0 += MATMUL_TOKENS_BLOCK) {
        int64_t t_end = t0 + MATMUL_TOKENS_BLOCK < j->rows ? t0 + MATMUL_TOKENS_BLOCK : j->rows;
        if (c->k.gemm) {
            c->k.gemm(j->out + t0 * N + n0, N, j->x + t0 * K, K, t_end - t0, wrows, K, nn, K);
            continue;
        }
        for (int64_t t = t0; t < t_end; t += LLMRT_CPU_TILE_T) {
            int n_t = t_end - t < LLMRT_CPU_TILE_T ? (int)(t_end - t) : LLMRT_CPU_TILE_T;
            int step = n_t == LLMRT_CPU_TILE_T ? c->k.tile_rows : LLMRT_CPU_TILE_N;
            for (int64_t r = 0; r < nn; r += step) {
                int n_n = nn - r < step ? (int)(nn - r) : step;
                c->k.dot_tile(j->out + t * N + n0 + r, N, j->x + t * K, K, n_t, wrows + r * K, K,
                              n_n, K);
            }
        }
    }
}

static void matmul_task(void *p, int64_t task, int thread) {
    const matmul_job *j  = p;
    const cpu_ctx    *c  = j->c;
    int64_t           N  = j->w->rows, K = j->w->cols;
    int64_t           n0 = task * j->rows_per_task;
    int64_t           nn = N - n0 < j->rows_per_task ? N - n0 : j->rows_per_task;
    const int64_t     GT = LLMRT_CPU_Q4_GEMV_T; /* tokens per fused kernel call */
    if (j->i8) {
        c->i8k.gemm(j->out + n0, N, &c->xq, j->rows, j->i8, j->i8_row0 + n0, (int)nn);
    } else if (j->kq8 || j->q5) {
        llmrt_dtype    t         = j->w->dtype;
        int64_t        row_bytes = K / llmrt_dtype_block_elems(t) * llmrt_dtype_block_bytes(t);
        const uint8_t *w0        = (const uint8_t *)j->w->data + n0 * row_bytes;
        for (int64_t r = 0; r < nn; r += 4) {
            int n_n = nn - r < 4 ? (int)(nn - r) : 4;
            if (j->kq8)
                c->kq8k.gemm(t, j->out + n0 + r, N, &c->xk, j->rows, w0 + r * row_bytes,
                             row_bytes, n_n);
            else
                c->kq8k.q5_gemm(t, j->out + n0 + r, N, &c->xq, j->rows, w0 + r * row_bytes,
                                row_bytes, n_n);
        }
    } else if (j->bf16) {
        c->bf16k.gemm(j->out + n0, N, c->xbf, j->rows, j->bf16, j->bf16_row0 + n0, (int)nn);
    } else if (j->w->dtype == LLMRT_DTYPE_Q4) {
        const llmrt_cpu_q4 *q = j->w->aux;
        if (c->q4k.gemv && j->rows <= FUSED_MAX_T) {
            /* dequantised in registers per 4 rows x 4 tokens, bit-identical to the path below */
            const int gr = c->q4k.gemv_rows;
            for (int64_t r = 0; r < nn; r += gr) {
                int n_n = nn - r < gr ? (int)(nn - r) : gr;
                for (int64_t t = 0; t < j->rows; t += LLMRT_CPU_Q4_GEMV_T) {
                    int n_t = (int)(j->rows - t < GT ? j->rows - t : GT);
                    c->q4k.gemv(j->out + t * N + n0 + r, N, j->x + t * K, K, n_t, q, n0 + r, n_n);
                }
            }
        } else {
            float *buf = c->wconv[thread];
            c->q4k.dequant_rows(buf, q, n0, (int)nn);
            matmul_rows_f32(c, j, n0, nn, buf);
        }
    } else if (j->w->dtype == LLMRT_DTYPE_Q8_0 && c->q4k.q8_gemv && j->rows <= FUSED_MAX_T) {
        int64_t        row_bytes = K / 32 * 34;
        const uint8_t *w0        = (const uint8_t *)j->w->data + n0 * row_bytes;
        const int      gr        = c->q4k.gemv_rows;
        for (int64_t r = 0; r < nn; r += gr) {
            int n_n = nn - r < gr ? (int)(nn - r) : gr;
            for (int64_t t = 0; t < j->rows; t += LLMRT_CPU_Q4_GEMV_T) {
                int n_t = (int)(j->rows - t < GT ? j->rows - t : GT);
                c->q4k.q8_gemv(j->out + t * N + n0 + r, N, j->x + t * K, K, n_t,
                               w0 + r * row_bytes, row_bytes, n_n, K);
            }
        }
    } else if (llmrt_ggml_is_packed(j->w->dtype) && c->kqk.gemv && j->rows <= FUSED_MAX_T) {
        llmrt_dtype    t         = j->w->dtype;
        int64_t        row_bytes = K / llmrt_dtype_block_elems(t) * llmrt_dtype_block_bytes(t);
        const uint8_t *w0        = (const uint8_t *)j->w->data + n0 * row_bytes;
        for (int64_t r = 0; r < nn; r += LLMRT_CPU_Q4_GEMV_N) {
            int n_n = nn - r < LLMRT_CPU_Q4_GEMV_N ? (int)(nn - r) : LLMRT_CPU_Q4_GEMV_N;
            for (int64_t t0 = 0; t0 < j->rows; t0 += LLMRT_CPU_Q4_GEMV_T) {
                int n_t = (int)(j->rows - t0 < GT ? j->rows - t0 : GT);
                c->kqk.gemv(t, j->out + t0 * N + n0 + r, N, j->x + t0 * K, K, n_t,
                            w0 + r * row_bytes, row_bytes, n_n, K);
            }
        }
    } else if (j->half) {
        const uint16_t *w0   = (const uint16_t *)j->w->data + n0 * K;
        bool            bf16 = j->w->dtype == LLMRT_DTYPE_BF16;
        for (int64_t r = 0; r < nn; r += LLMRT_CPU_TILE_N) {
            int n_n = nn - r < LLMRT_CPU_TILE_N ? (int)(nn - r) : LLMRT_CPU_TILE_N;
            for (int64_t t = 0; t < j->rows; t += LLMRT_CPU_TILE_T) {
                int n_t = (int)(j->rows - t < LLMRT_CPU_TILE_T ? j->rows - t : LLMRT_CPU_TILE_T);
                c->k.dot_tile_h(j->out + t * N + n0 + r, N, j->x + t * K, K, n_t, w0 + r * K, K,
                                n_n, K, bf16);
            }
        }
    } else if (j->w->dtype == LLMRT_DTYPE_F32) {
        matmul_rows_f32(c, j, n0, nn, (const float *)j->w->data + n0 * K);
    } else {
        float *buf = c->wconv[thread];
        for (int64_t r = 0; r < nn; r++) row_to_f32(c, buf + r * K, j->w, n0 + r);
        matmul_rows_f32(c, j, n0, nn, buf);
    }
    if (j->w->bias) {
        const float *bias = (const float *)j->w->bias + n0;
        for (int64_t t = 0; t < j->rows; t++)
            for (int64_t r = 0; r < nn; r++) j->out[t * N + n0 + r] += bias[r];
    }
}

/* The int8 panels holding the rows of a Q8_0 / Q8_Z weight (the weight itself or a row view of
 * one whose first row starts a panel), and the panel row of its row 0; NULL if none. */
static const llmrt_cpu_i8w *q8_panels_of(const cpu_ctx *c, const llmrt_bweight *w, int64_t *row0) {
    int64_t row_bytes = w->cols / 32 * llmrt_dtype_block_bytes(w->dtype);
    for (int32_t i = 0; i < c->n_q8; i++) {
        const struct q8_panels *e = &c->q8[i];
        if (e->dtype != w->dtype || e->cols != w->cols || (const uint8_t *)w->data < e->data)
            continue;
        int64_t off = (const uint8_t *)w->data - e->data;
        if (off % row_bytes != 0) continue;
        int64_t r0 = off / row_bytes;
        if (r0 + w->rows > e->rows || r0 % LLMRT_CPU_I8_PANEL != 0) continue;
        *row0 = r0;
        return &e->w;
    }
    return NULL;
}

typedef struct bf16_round_job {
    const cpu_ctx *c;
    const float   *x;               /* [M, K] */
    int64_t        M, K, kp, per;   /* per: rows per task */
} bf16_round_job;

static void bf16_round_task(void *p, int64_t task, int thread) {
    (void)thread;
    const bf16_round_job *j  = p;
    int64_t               t0 = task * j->per, n = j->M - t0 < j->per ? j->M - t0 : j->per;
    j->c->bf16k.to_bf16(j->c->xbf + t0 * j->kp, j->x + t0 * j->K, n, j->K, j->kp);
}

/* c->xbf [M, kp] = x [M, K] rounded to bf16, rows split over the pool when there are enough of
 * them (each row rounds on its own, so the split changes no bit): on the calling thread alone it
 * was 1.2 % of a 64-request batch's CPU time with the other thread waiting. */
static void round_to_bf16(cpu_ctx *c, const float *x, int64_t M, int64_t K, int64_t kp) {
    if (M <= 0) return;
    int64_t n_tasks = M * K >= 8192 ? 2 * (int64_t)c->n_threads : 1;
    if (n_tasks > M) n_tasks = M;
    bf16_round_job j = {
        .c = c, .x = x, .M = M, .K = K, .kp = kp, .per = (M + n_tasks - 1) / n_tasks};
    llmrt_thread_pool_run(c->pool, (M + j.per - 1) / j.per, bf16_round_task, &j);
}

/* The bf16 panels holding the rows of an f32/f16/bf16 weight (the weight itself or a row view
 * of one whose first row starts a panel), and the panel row of its row 0; NULL if none. */
static const llmrt_cpu_bf16w *bf16_panels_of(const cpu_ctx *c, const llmrt_bweight *w,
                                             int64_t *row0) {
    int64_t row_bytes = w->cols * (w->dtype == LLMRT_DTYPE_F32 ? 4 : 2);
    for (int32_t i = 0; i < c->n_bfp; i++) {
        const struct bf16_panels *e = &c->bfp[i];
        if (e->dtype != w->dtype || e->cols != w->cols || (const char *)w->data < (const char *)e->data)
            continue;
        int64_t off = (const char *)w->data - (const char *)e->data;
        if (off % row_bytes != 0) continue;
        int64_t r0 = off / row_bytes;
        if (r0 + w->rows > e->rows || r0 % LLMRT_CPU_BF16_PANEL != 0) continue;
        *row0 = r0;
        return &e->w;
    }
    return NULL;
}

/* Which activation buffers a matmul (or a fused group of matmuls of one x) has filled from x:
 * the tasks of every weight of the group read them, so each is made once. */
typedef struct x_prepared {
    bool xq, xk, xbf;
} x_prepared;

/* Fills *job for out [rows, w->rows] = x [rows, K] · Wᵀ: the gathered x of a permuted weight,
 * the int8 / q8_K / bf16 activations the weight's kernels read (made unless *done says x was
 * already converted for another weight of the same x), and the rows per task. Returns the
 * task count. */
static int64_t matmul_prepare(cpu_ctx *c, matmul_job *job, void *out, const void *x, int64_t rows,
                              const llmrt_bweight *w, x_prepared *done) {
    *job = (matmul_job){.c = c, .out = out, .x = x, .rows = rows, .w = w};
    if (w->dtype == LLMRT_DTYPE_Q4 && ((const llmrt_cpu_q4 *)w->aux)->perm) {
        /* act-order: stored column j is input column perm[j] (xperm is sized by begin_batch);
         * a padded TP slice reads x [rows, x_cols] and 0 for its padding columns (perm -1) */
        const llmrt_cpu_q4 *q    = w->aux;
        const int32_t      *perm = q->perm;
        int64_t             K = w->cols, Kx = q->x_cols;
        const float        *xf = x;
        for (int64_t t = 0; t < rows; t++)
            for (int64_t k = 0; k < K; k++)
                c->xperm[t * K + k] = perm[k] >= 0 ? xf[t * Kx + perm[k]] : 0.0f;
        job->x = c->xperm;
    } else if (w->dtype != LLMRT_DTYPE_Q4 && w->aux) {
        /* a permuted block / dense weight (weight_upload_permuted): stored column j reads
         * x[:, perm[j]] */
        const int32_t *perm = w->aux;
        int64_t        K    = w->cols;
        const float   *xf   = x;
        for (int64_t t = 0; t < rows; t++)
            for (int64_t k = 0; k < K; k++) c->xperm[t * K + k] = xf[t * K + perm[k]];
        job->x = c->xperm;
    }
    if (w->dtype == LLMRT_DTYPE_Q4) job->i8 = ((const llmrt_cpu_q4 *)w->aux)->i8;
    else if (w->dtype == LLMRT_DTYPE_Q8_0 || w->dtype == LLMRT_DTYPE_Q8_Z)
        job->i8 = q8_panels_of(c, w, &job->i8_row0);
    bool q5 = c->i8k.isa && c->kq8k.q5_gemm &&
              (w->dtype == LLMRT_DTYPE_Q5_0 || w->dtype == LLMRT_DTYPE_Q5_1);
    if ((job->i8 || q5) && c->xq_cap >= rows * w->cols) {
        /* int8 mode at every batch size (a token's result then depends on no other token);
         * x (or xperm) is quantised once per 32 columns, the tasks share it (the panels and
         * Q5_0 / Q5_1 read in place take the same activations) */
        if (!done->xq) {
            c->xq.K = w->cols;
            c->i8k.quantize(&c->xq, job->x, w->cols, rows);
            done->xq = true;
        }
        job->q5 = q5;
    } else {
        job->i8 = NULL;
    }
    if (c->kq8k.isa && llmrt_cpu_kq8_takes(w->dtype) && c->xk_cap >= rows * w->cols) {
        /* int8 mode, K-quant weights: x quantised once (q8_K), the tasks share it */
        if (!done->xk) {
            c->xk.K = w->cols;
            c->kq8k.quantize(&c->xk, job->x, w->cols, rows);
            done->xk = true;
        }
        job->kq8 = true;
    }
    if (c->bf16k.isa && (w->dtype == LLMRT_DTYPE_F32 || w->dtype == LLMRT_DTYPE_F16 ||
                         w->dtype == LLMRT_DTYPE_BF16))
        job->bf16 = bf16_panels_of(c, w, &job->bf16_row0);
    if (job->bf16 && c->xbf_cap >= rows * job->bf16->kp) {
        /* bf16 mode at every batch size; x is rounded once, the tasks share it */
        if (!done->xbf) {
            round_to_bf16(c, job->x, rows, w->cols, job->bf16->kp);
            done->xbf = true;
        }
    } else {
        job->bf16 = NULL;
    }
    job->half = !job->bf16 && c->k.dot_tile_h && rows <= HALF_FUSED_MAX_T &&
                (w->dtype == LLMRT_DTYPE_F16 || w->dtype == LLMRT_DTYPE_BF16);
    /* the fused kernels (no scratch) take ~4 tasks per thread; the rest 24 rows (scratch size) */
    bool fused = job->i8 || job->kq8 || job->q5 || job->half ||
                 (rows <= FUSED_MAX_T &&
                  ((w->dtype == LLMRT_DTYPE_Q4 && c->q4k.gemv) ||
                   (w->dtype == LLMRT_DTYPE_Q8_0 && c->q4k.q8_gemv) ||
                   (llmrt_ggml_is_packed(w->dtype) && c->kqk.gemv)));
    job->rows_per_task = TILE_ROWS_PER_TASK;
    if (job->bf16) {
        /* whole panels, ~4 tasks per thread as for the fused kernels */
        const int64_t P   = LLMRT_CPU_BF16_PANEL;
        int64_t       per = (w->rows + 4 * c->n_threads - 1) / (4 * c->n_threads);
        job->rows_per_task = (per + P - 1) / P * P;
    } else if (fused) {
        int64_t per = (w->rows + 4 * c->n_threads - 1) / (4 * c->n_threads);
        per         = (per + MATMUL_ROWS_PER_TASK - 1) / MATMUL_ROWS_PER_TASK * MATMUL_ROWS_PER_TASK;
        job->rows_per_task = per > MATMUL_ROWS_PER_TASK ? per : MATMUL_ROWS_PER_TASK;
    }
    return (w->rows + job->rows_per_task - 1) / job->rows_per_task;
}

static void cpu_matmul(llmrt_backend *be, void *out, const void *x, int64_t rows,
                       const llmrt_bweight *w) {
    cpu_ctx   *c    = ctx_of(be);
    matmul_job job;
    x_prepared done = {0};
    int64_t    n    = matmul_prepare(c, &job, out, x, rows, w, &done);
    llmrt_thread_pool_run(c->pool, n, matmul_task, &job);
}

/* matmul_fused, the projections of one activation x (q, k, v; gate, up) only: their tasks in
 * one pool run, x converted once for all of them (int8, q8_K, bf16). On 2 threads a decode
 * step's 7 matmul dispatches per layer become 4, and each thread's weight stream runs from one
 * matrix into the next without a barrier between them. Every output element is computed by the
 * same kernel call as by separate matmuls (same bits). Declined: the RMSNORM and SWIGLU
 * inputs, a residual add, a weight read through a column permutation (xperm holds one x). */
typedef struct fused_job {
    matmul_job jobs[LLMRT_FUSED_MAX_W];
    int64_t    first[LLMRT_FUSED_MAX_W + 1]; /* task ranges of the weights */
    int32_t    n_w;
} fused_job;

static void fused_task(void *p, int64_t task, int thread) {
    const fused_job *f = p;
    int32_t          i = 0;
    while (task >= f->first[i + 1]) i++;
    matmul_task((void *)&f->jobs[i], task - f->first[i], thread);
}

static bool cpu_matmul_fused(llmrt_backend *be, const llmrt_fused_matmul *f, int64_t rows) {
    cpu_ctx *c = ctx_of(be);
    if (f->input != LLMRT_FUSED_IN_ACT || f->residual || f->n_w < 2 ||
        f->n_w > LLMRT_FUSED_MAX_W)
        return false;
    for (int32_t i = 0; i < f->n_w; i++) {
        const llmrt_bweight *w = f->w[i];
        if (w->cols != f->w[0]->cols) return false;
        if (w->dtype == LLMRT_DTYPE_Q4 ? ((const llmrt_cpu_q4 *)w->aux)->perm != NULL
                                       : w->aux != NULL)
            return false;
    }
    fused_job  job  = {.n_w = f->n_w};
    x_prepared done = {0};
    for (int32_t i = 0; i < f->n_w; i++)
        job.first[i + 1] =
            job.first[i] + matmul_prepare(c, &job.jobs[i], f->out[i], f->x, rows, f->w[i], &done);
    llmrt_thread_pool_run(c->pool, job.first[f->n_w], fused_task, &job);
    return true;
}

/* --------------------------------------------------------------------------------------------- */
/* RoPE + KV write, attention over the paged cache                                               */
/* --------------------------------------------------------------------------------------------- */

static void rope_rotate(float *v, const float *cosv, const float *sinv, int32_t half) {
    for (int32_t i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[i + half];
        v[i]        = x1 * cosv[i] - x2 * sinv[i];
        v[i + half] = x2 * cosv[i] + x1 * sinv[i];
    }
}

typedef struct rope_kv_job {
    const cpu_ctx          *c;
    float                  *q, *k;
    const float            *v;
    void                   *k_cache, *v_cache;
    const llmrt_attn_shape *s;
    int64_t                 per; /* tokens per task */
} rope_kv_job;

/* RoPE on token t's q and k heads, then its K and V into the cache slot c->slots[t] */
static void rope_kv_token(const rope_kv_job *j, int32_t t) {
    const cpu_ctx          *c    = j->c;
    const llmrt_attn_shape *s    = j->s;
    int32_t                 hd   = s->head_dim, half = hd / 2;
    int64_t                 q_w  = (int64_t)s->n_heads * hd, kv_w = (int64_t)s->n_kv_heads * hd;
    void                   *k_cache = j->k_cache, *v_cache = j->v_cache;
    const float *cs = c->rope_cos + (int64_t)t * half, *sn = c->rope_sin + (int64_t)t * half;
    float       *qt = j->q + t * q_w, *kt = j->k + t * kv_w;
    for (int32_t h = 0; h < s->n_heads; h++) rope_rotate(qt + (int64_t)h * hd, cs, sn, half);
    for (int32_t h = 0; h < s->n_kv_heads; h++) rope_rotate(kt + (int64_t)h * hd, cs, sn, half);
    const float *vt = j->v + t * kv_w;
    if (llmrt_kv_dtype_is_8bit(s->kv_dtype)) {
        llmrt_kv8_layout l = {s->block_size, s->n_kv_heads, hd};
        llmrt_kv_quantise_token(k_cache, &l, c->slots[t], kt, s->kv_dtype);
        llmrt_kv_quantise_token(v_cache, &l, c->slots[t], vt, s->kv_dtype);
        return;
    }
    /* K d-major per block and head (llmrt_cpu_k_index: the attention reads it transposed) */
    int32_t bs = s->block_size;
    for (int32_t h = 0; h < s->n_kv_heads; h++) {
        int64_t      k0 = llmrt_cpu_k_index(c->slots[t], h, 0, s->n_kv_heads, hd, bs);
        const float *kh = kt + (int64_t)h * hd;
        if (s->kv_dtype == LLMRT_DTYPE_BF16)
            for (int32_t d = 0; d < hd; d++)
                ((uint16_t *)k_cache)[k0 + (int64_t)d * bs] = llmrt_f32_to_bf16(kh[d]);
        else
            for (int32_t d = 0; d < hd; d++) ((float *)k_cache)[k0 + (int64_t)d * bs] = kh[d];
    }
    if (s->kv_dtype == LLMRT_DTYPE_BF16)
        llmrt_kv_store_bf16((uint16_t *)v_cache + c->slots[t] * kv_w, vt, kv_w);
    else
        memcpy((float *)v_cache + c->slots[t] * kv_w, vt, (size_t)kv_w * sizeof(float));
}

static void rope_kv_task(void *p, int64_t task, int thread) {
    (void)thread;
    const rope_kv_job *j  = p;
    int64_t            t0 = task * j->per, n = j->c->n_tokens;
    for (int64_t t = t0; t < t0 + j->per && t < n; t++) rope_kv_token(j, (int32_t)t);
}

/* Tokens are independent (own q, k rows and cache slot): a batch's tokens go to the pool, 8 per
 * task; fewer than 16 (decode of a few sequences) stay on the calling thread, where a wake-up
 * would cost more than the work. On 2 cores the serial loop was ~1.2 % of a 64-request run's
 * samples with the other core idle. */
#define ROPE_KV_TOKENS_PER_TASK 8
static void cpu_rope_kv_write(llmrt_backend *be, void *q, void *k, const void *v, void *k_cache,
                              void *v_cache, const llmrt_attn_shape *s) {
    cpu_ctx    *c = ctx_of(be);
    rope_kv_job j = {.c = c, .q = q, .k = k, .v = v, .k_cache = k_cache, .v_cache = v_cache,
                     .s = s, .per = ROPE_KV_TOKENS_PER_TASK};
    if (c->n_tokens < 2 * ROPE_KV_TOKENS_PER_TASK) {
        for (int32_t t = 0; t < c->n_tokens; t++) rope_kv_token(&j, t);
        return;
    }
    llmrt_thread_pool_run(c->pool, (c->n_tokens + j.per - 1) / j.per, rope_kv_task, &j);
}

static void cpu_attention(llmrt_backend *be, void *out, const void *q, const void *k_cache,
                          const void *v_cache, const llmrt_attn_shape *s) {
    cpu_ctx             *c = ctx_of(be);
    llmrt_cpu_attn_batch b = {.positions = c->positions, .seq_of = c->seq_of,
                              .block_tables = c->block_tables, .n_tokens = c->n_tokens,
                              .max_blocks = c->max_blocks};
    llmrt_error          err = {0};
    llmrt_dtype          kv  = s->kv_dtype ? s->kv_dtype : LLMRT_DTYPE_F32;
    llmrt_status st = llmrt_cpu_attention(&c->attn, c->pool, out, q, k_cache, v_cache, kv,
                                          s->n_heads, s->n_kv_heads, s->head_dim, s->block_size,
                                          s->scale, s->window, &b);
    if (st != LLMRT_OK) { /* begin_batch reserved for head_dim = 2 * half_dim; grow for another */
        st = llmrt_cpu_attn_reserve(&c->attn, c->n_tokens, s->head_dim, &err);
        if (st == LLMRT_OK)
            st = llmrt_cpu_attention(&c->attn, c->pool, out, q, k_cache, v_cache, kv,
                                     s->n_heads, s->n_kv_heads, s->head_dim, s->block_size,
                                     s->scale, s->window, &b);
    }
    if (st != LLMRT_OK) { /* the op cannot fail: make the failure visible in the logits */
        llmrt_log(LLMRT_LOG_ERROR, "cpu attention: %s", llmrt_status_str(st));
        float *o = out;
        for (int64_t i = 0; i < (int64_t)c->n_tokens * s->n_heads * s->head_dim; i++) o[i] = NAN;
    }
}

/* --------------------------------------------------------------------------------------------- */
/* LoRA adapters per request (lora_cpu.c)                                                        */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status cpu_lora_table_create(llmrt_backend *be, int32_t n_slots, int64_t n, int64_t k,
                                          llmrt_blora_table **out, llmrt_error *err) {
    (void)be;
    return llmrt_cpu_lora_table_create(n_slots, n, k, out, err);
}

static llmrt_status cpu_lora_table_set(llmrt_backend *be, llmrt_blora_table *t, int32_t slot,
                                       int32_t rank, const float *a, const float *b,
                                       llmrt_error *err) {
    (void)be;
    return llmrt_cpu_lora_table_set(t, slot, rank, a, b, err);
}

static void cpu_lora_table_destroy(llmrt_backend *be, llmrt_blora_table *t) {
    (void)be;
    llmrt_cpu_lora_table_destroy(t);
}

static void cpu_lora_apply(llmrt_backend *be, void *out, const void *x, int64_t rows,
                           const llmrt_blora_table *t) {
    cpu_ctx *c = ctx_of(be);
    if (!c->has_lora || rows > c->n_tokens) return;
    llmrt_cpu_lora_apply(c->pool, &c->k, out, x, rows, c->lora_slot, c->lora_scale, t);
}

/* --------------------------------------------------------------------------------------------- */
/* lifecycle                                                                                     */
/* --------------------------------------------------------------------------------------------- */

static void cpu_destroy(llmrt_backend *be) {
    if (!be) return;
    cpu_ctx *c = ctx_of(be);
    if (c) {
        llmrt_thread_pool_destroy(c->pool);
        for (int t = 0; t < c->n_threads; t++) {
            if (c->wconv) free(c->wconv[t]);
        }
        free(c->wconv);
        llmrt_cpu_attn_free(&c->attn);
        free(c->xperm);
        free(c->xq.q);
        free(c->xq.d);
        free(c->xq.s);
        free(c->xk.q);
        free(c->xk.d);
        free(c->xk.bsums);
        free(c->xbf);
        for (int32_t i = 0; i < c->n_q8; i++) llmrt_cpu_i8w_free(&c->q8[i].w);
        free(c->q8);
        for (int32_t i = 0; i < c->n_bfp; i++) llmrt_cpu_bf16w_free(&c->bfp[i].w);
        free(c->bfp);
        for (int32_t i = 0; i < c->n_f32_copies; i++) llmrt_cpu_mem_free(c->f32_copies[i]);
        free(c->f32_copies);
        free(c->inv_freq);
        free(c->tokens);
        free(c->positions);
        free(c->seq_of);
        free(c->slots);
        free(c->block_tables);
        free(c->output_rows);
        free(c->rope_cos);
        free(c->rope_sin);
        free(c->lora_slot);
        free(c->lora_scale);
        free(c);
    }
    free(be);
}

static void cpu_host_run(llmrt_backend *be, int64_t n_tasks, llmrt_task_fn task, void *ctx) {
    llmrt_thread_pool_run(ctx_of(be)->pool, n_tasks, task, ctx);
}

static const llmrt_backend_ops cpu_ops = {
    .destroy         = cpu_destroy,
    .alloc           = cpu_alloc,
    .free            = cpu_free,
    .weight_upload   = cpu_weight_upload,
    .weight_upload_q4 = cpu_weight_upload_q4,
    .weight_upload_permuted = cpu_weight_upload_permuted,
    .weight_free     = cpu_weight_free,
    .supports_weight = cpu_supports_weight,
    .supports        = cpu_supports,
    .rope_init       = cpu_rope_init,
    .begin_batch     = cpu_begin_batch,
    .embed           = cpu_embed,
    .rmsnorm         = cpu_rmsnorm,
    .add_rmsnorm     = cpu_add_rmsnorm,
    .add             = cpu_add,
    .matmul          = cpu_matmul,
    .matmul_fused    = cpu_matmul_fused,
    .rope_kv_write   = cpu_rope_kv_write,
    .attention       = cpu_attention,
    .swiglu          = cpu_swiglu,
    .gather_outputs  = cpu_gather_outputs,
    .download_f32    = cpu_download_f32,
    .upload          = cpu_upload,
    .copy            = cpu_copy,
    .lora_table_create  = cpu_lora_table_create,
    .lora_table_set     = cpu_lora_table_set,
    .lora_table_destroy = cpu_lora_table_destroy,
    .lora_apply         = cpu_lora_apply,
    .host_run           = cpu_host_run,
};

llmrt_status llmrt_backend_cpu_create(int n_threads, const char *force_isa, llmrt_backend **out,
                                      llmrt_error *err) {
    return llmrt_backend_cpu_create_opts(n_threads, force_isa, NULL, out, err);
}

llmrt_status llmrt_backend_cpu_create_opts(int n_threads, const char *force_isa,
                                           const llmrt_cpu_options *opt, llmrt_backend **out,
                                           llmrt_error *err) {
    *out              = NULL;
    llmrt_backend *be = calloc(1, sizeof *be);
    cpu_ctx       *c  = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    be->ops       = &cpu_ops;
    be->name      = "cpu";
    be->act_bytes = sizeof(float);
    be->act_dtype = LLMRT_DTYPE_F32;
    be->ctx       = c;
    c->k          = llmrt_cpu_kernels_select(force_isa);
    c->q4k        = llmrt_cpu_q4_kernels_for(c->k.isa);
    c->kqk        = llmrt_cpu_kq_kernels_for(c->k.isa);
    if (opt && opt->matmul_mode == LLMRT_CPU_MATMUL_INT8) {
        c->i8k  = llmrt_cpu_i8_kernels_for(c->k.isa);
        c->kq8k = llmrt_cpu_kq8_kernels_for(c->k.isa); /* every kernel set has them */
        if (!c->i8k.isa)
            llmrt_log(LLMRT_LOG_WARN, "cpu backend: no int8 kernels for 4-bit/Q8_0/Q8_Z weights with "
                      "the %s kernel set (AVX512-VNNI, AVX2 + FMA or portable C needed); those "
                      "matmuls stay fp32 (K-quants: %s int8 kernels)", c->k.isa, c->kq8k.isa);
    }
    char why[128] = "";
    c->pool       = llmrt_thread_pool_create_pinned(n_threads, opt && opt->pin_threads, why,
                                                    sizeof why);
    if (!c->pool) {
        cpu_destroy(be);
        if (why[0])
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu backend: cpu_pin_threads: %s", why);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: cannot start threads");
    }
    c->n_threads = llmrt_thread_pool_size(c->pool);
    c->wconv     = calloc((size_t)c->n_threads, sizeof *c->wconv);
    llmrt_error aerr = {0};
    if (!c->wconv || llmrt_cpu_attn_init(&c->attn, c->k.isa, c->n_threads, &aerr) != LLMRT_OK) {
        cpu_destroy(be);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    *out = be;
    if (opt && opt->bf16_activations) {
        c->bf16k = llmrt_cpu_bf16_kernels_for(c->k.isa);
        if (!c->bf16k.isa)
            llmrt_log(LLMRT_LOG_WARN, "cpu backend: no bf16 kernels for the %s kernel set "
                      "(AVX512-BF16 needed); bf16 weights stay fp32 math", c->k.isa);
    }
    llmrt_cpu_swiglu_fn fast = llmrt_cpu_swiglu_fast_for(c->k.isa);
    llmrt_cpu_swiglu_fn exact = llmrt_cpu_swiglu_exact_for(c->k.isa);
    c->swiglu = (c->i8k.isa || c->bf16k.isa) && fast ? fast : exact;
    c->rms4 = llmrt_cpu_rmsnorm4_for(c->k.isa);
    llmrt_log(LLMRT_LOG_INFO, "cpu backend: %d threads, %s kernels%s%s%s", c->n_threads, c->k.isa,
              c->i8k.isa ? ", int8 matmuls" : "", c->bf16k.isa ? ", bf16 matmuls" : "",
              c->swiglu != exact ? ", vector SwiGLU exp" : "");
    return LLMRT_OK;
}
