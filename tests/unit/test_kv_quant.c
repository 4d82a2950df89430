/* The 8-bit KV cache codes (host/format/kv_quant.h). fp8 e4m3 against its definition (OCP
 * "E4M3FN": bias 7, 3 mantissa bits, subnormals below 2^-6, 0x7F/0xFF NaN, no infinity): fixed
 * anchors, every code decodes and re-encodes to itself, the midpoint between two neighbours
 * rounds to the even code, values past 448 saturate. int8 absmax quantisation of known heads,
 * the block layout, and the zero / NaN heads. */
#include <math.h>
#include <string.h>

#include "format/kv_quant.h"
#include "test_util.h"

static void test_fp8_anchors(void) {
    CHECK(llmrt_fp8_e4m3_to_float(0x00) == 0.0f);
    CHECK(llmrt_fp8_e4m3_to_float(0x38) == 1.0f);    /* E = 7, m = 0 */
    CHECK(llmrt_fp8_e4m3_to_float(0x7E) == 448.0f);  /* the largest finite value */
    CHECK(llmrt_fp8_e4m3_to_float(0x08) == 0x1p-6f); /* the smallest normal */
    CHECK(llmrt_fp8_e4m3_to_float(0x01) == 0x1p-9f); /* the smallest subnormal */
    CHECK(llmrt_fp8_e4m3_to_float(0x07) == 7 * 0x1p-9f);
    CHECK(llmrt_fp8_e4m3_to_float(0xC0) == -2.0f);
    CHECK(isnan(llmrt_fp8_e4m3_to_float(0x7F)) && isnan(llmrt_fp8_e4m3_to_float(0xFF)));
    CHECK(llmrt_fp8_e4m3_from_float(1e6f) == 0x7E && llmrt_fp8_e4m3_from_float(-1e6f) == 0xFE);
    CHECK(llmrt_fp8_e4m3_from_float(INFINITY) == 0x7E);
    CHECK(llmrt_fp8_e4m3_from_float(449.0f) == 0x7E);
    CHECK(llmrt_fp8_e4m3_from_float(NAN) == 0x7F);
    CHECK(llmrt_fp8_e4m3_from_float(0x1p-11f) == 0x00); /* below half the smallest subnormal */
    CHECK(llmrt_fp8_e4m3_from_float(0x1p-10f * 1.01f) == 0x01);
}

static void test_fp8_round_trip_and_ties(void) {
    const float *t = llmrt_fp8_e4m3_table();
    int ok_rt = 1, ok_tie = 1, ok_mono = 1;
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7F) == 0x7F) continue;
        ok_rt &= llmrt_fp8_e4m3_from_float(t[c]) == c || (c == 0x80 && t[c] == 0.0f);
        ok_rt &= t[c] == llmrt_fp8_e4m3_to_float((uint8_t)c);
    }
    for (int c = 0; c < 0x7E; c++) { /* positive neighbours c, c + 1 */
        ok_mono &= t[c] < t[c + 1];
        float mid = 0.5f * (t[c] + t[c + 1]); /* exact: both have few bits */
        int even = c % 2 == 0 ? c : c + 1;
        ok_tie &= llmrt_fp8_e4m3_from_float(mid) == even;
        ok_tie &= llmrt_fp8_e4m3_from_float(-mid) == (0x80 | even);
        /* just off the midpoint: the nearer code */
        ok_tie &= llmrt_fp8_e4m3_from_float(nextafterf(mid, 0.0f)) == c;
        ok_tie &= llmrt_fp8_e4m3_from_float(nextafterf(mid, 1e9f)) == c + 1;
    }
    CHECK_MSG(ok_rt, "fp8: a code does not decode and re-encode to itself");
    CHECK_MSG(ok_mono, "fp8: codes 0..0x7E are not increasing");
    CHECK_MSG(ok_tie, "fp8: rounding is not to the nearest, ties to even");
}

static void test_int8_head(void) {
    float x[5] = {-2.54f, 1.27f, 0.0f, 0.01f, 2.54f};
    uint8_t q[5];
    float s = llmrt_kv_quantise_head(q, x, 5, LLMRT_DTYPE_I8);
    CHECK(fabsf(s - 0.02f) < 1e-7f);
    CHECK((int8_t)q[0] == -127 && (int8_t)q[1] == 64 && q[2] == 0 && (int8_t)q[3] == 0 &&
          (int8_t)q[4] == 127); /* 1.27 / 0.02 = 63.5 -> 64 (nearest; float rounding) */
    float zero[3] = {0, 0, 0};
    CHECK(llmrt_kv_quantise_head(q, zero, 3, LLMRT_DTYPE_I8) == 0.0f && q[0] == 0 && q[2] == 0);
    float bad[3] = {1.0f, NAN, 2.0f};
    CHECK(isnan(llmrt_kv_quantise_head(q, bad, 3, LLMRT_DTYPE_F8_E4M3)));
    float back[3];
    llmrt_kv_dequantise_head(back, q, NAN, 3, LLMRT_DTYPE_F8_E4M3);
    CHECK_MSG(isnan(back[0]) && isnan(back[2]), "a NaN head must read back as NaN");
}

static void test_block_layout(void) {
    /* bs 2, Hkv 3, hd 6: a block is 2 x 3 x 6 codes then 2 x 3 scales (48 bytes); slot 3 is
     * block 1 offset 1; its scales sit at the unaligned offset 48 + 36 + 12 */
    llmrt_kv8_layout l = {2, 3, 6};
    CHECK(llmrt_kv8_block_bytes(&l) == 60);
    CHECK(llmrt_kv8_codes_off(&l, 3, 2) == 60 + (1 * 3 + 2) * 6);
    CHECK(llmrt_kv8_scale_off(&l, 3, 2) == 60 + 36 + (1 * 3 + 2) * 4);
    CHECK(llmrt_kv_slot_bytes(LLMRT_DTYPE_I8, 3, 6, 4) == 30);
    CHECK(llmrt_kv_slot_bytes(LLMRT_DTYPE_F32, 3, 6, 4) == 72);
    float x[18];
    for (int i = 0; i < 18; i++)
        x[i] = (float)(i - 7) * (i / 6 + 1);
    uint8_t pool[121];
    memset(pool, 0xAB, sizeof pool);
    llmrt_kv_quantise_token(pool, &l, 3, x, LLMRT_DTYPE_F8_E4M3);
    CHECK(pool[120] == 0xAB && pool[59] == 0xAB); /* nothing outside block 1 written */
    for (int h = 0; h < 3; h++) {
        float amax = 0;
        for (int i = 0; i < 6; i++)
            amax = fmaxf(amax, fabsf(x[h * 6 + i]));
        float s = llmrt_kv8_scale(pool, &l, 3, h);
        CHECK_MSG(s == amax / 448.0f, "head %d scale %g, want %g", h, s, amax / 448.0f);
        float back[6];
        llmrt_kv_dequantise_head(back, pool + llmrt_kv8_codes_off(&l, 3, h), s, 6,
                                 LLMRT_DTYPE_F8_E4M3);
        for (int i = 0; i < 6; i++)
            CHECK(fabsf(back[i] - x[h * 6 + i]) <= fabsf(x[h * 6 + i]) / 16 + s * 0x1p-10f);
    }
}

int main(void) {
    test_fp8_anchors();
    test_fp8_round_trip_and_ties();
    test_int8_head();
    test_block_layout();
    return test_summary("test_kv_quant");
}
