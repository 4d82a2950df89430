/* Unicode NFC (UAX #15): canonical decomposition, canonical ordering, canonical composition,
 * over the tables of unicode_nfc_tables.h (python/tools/make_unicode_nfc.py) plus the
 * algorithmic Hangul syllables. The text is processed in segments that end before each code
 * point below U+0300 (class 0, and never the second element of a composite, so nothing before
 * it can change). Bytes that are not well-formed UTF-8 are copied unchanged and end the
 * segment (callers sanitise first). */
#include <stdlib.h>

#include "unicode.h"
#include "unicode_nfc_tables.h"

#define S_BASE  0xAC00u
#define L_BASE  0x1100u
#define V_BASE  0x1161u
#define T_BASE  0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define N_COUNT (V_COUNT * T_COUNT)
#define S_COUNT (L_COUNT * N_COUNT)

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = sizeof nfc_ccc / sizeof nfc_ccc[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nfc_ccc[mid][0]) hi = mid;
        else if (cp > nfc_ccc[mid][1]) lo = mid + 1;
        else return (int)nfc_ccc[mid][2];
    }
    return 0;
}

/* The full canonical decomposition of cp into out (<= 4 code points); returns the count. */
static int decompose(uint32_t cp, uint32_t out[4]) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE, t = s % T_COUNT;
        out[0] = L_BASE + s / N_COUNT;
        out[1] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (t == 0) return 2;
        out[2] = T_BASE + t;
        return 3;
    }
    if (cp >= 0xC0) {
        size_t lo = 0, hi = sizeof nfc_decomp_index / sizeof nfc_decomp_index[0];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp < nfc_decomp_index[mid][0]) hi = mid;
            else if (cp > nfc_decomp_index[mid][0]) lo = mid + 1;
            else {
                uint32_t off = nfc_decomp_index[mid][1], n = nfc_decomp_index[mid][2];
                for (uint32_t i = 0; i < n; i++) out[i] = nfc_decomp_pool[off + i];
                return (int)n;
            }
        }
    }
    out[0] = cp;
    return 1;
}

/* The primary composite of <a, b>, or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = sizeof nfc_comp / sizeof nfc_comp[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a < nfc_comp[mid][0] || (a == nfc_comp[mid][0] && b < nfc_comp[mid][1])) hi = mid;
        else if (a > nfc_comp[mid][0] || b > nfc_comp[mid][1]) lo = mid + 1;
        else return nfc_comp[mid][2];
    }
    return 0;
}

typedef struct cp_vec {
    uint32_t *v;
    size_t    n, cap;
} cp_vec;

static bool push_cp(cp_vec *a, uint32_t cp) {
    if (a->n == a->cap) {
        size_t    cap = a->cap ? 2 * a->cap : 64;
        uint32_t *n   = realloc(a->v, cap * sizeof *n);
        if (!n) return false;
        a->v   = n;
        a->cap = cap;
    }
    a->v[a->n++] = cp;
    return true;
}

/* Orders, composes and appends the decomposed segment seg[0..n) as UTF-8. */
static bool flush(cp_vec *seg, tk_buf *out) {
    uint32_t *c = seg->v;
    size_t    n = seg->n;
    /* canonical ordering: a stable insertion sort of each run of non-starters by class */
    for (size_t i = 1; i < n; i++) {
        int ci = ccc_of(c[i]);
        if (ci == 0) continue;
        for (size_t j = i; j > 0; j--) {
            int cj = ccc_of(c[j - 1]);
            if (cj == 0 || cj <= ci) break;
            uint32_t t = c[j - 1];
            c[j - 1]   = c[j];
            c[j]       = t;
        }
    }
    /* canonical composition: C combines with the last starter L unless blocked (a character
     * between them of class 0 or >= C's class) */
    size_t m = 0, starter = (size_t)-1;
    int    last_cc = 0;
    for (size_t i = 0; i < n; i++) {
        int cc = ccc_of(c[i]);
        if (starter != (size_t)-1 && (m == starter + 1 || (last_cc != 0 && last_cc < cc))) {
            uint32_t k = compose(c[starter], c[i]);
            if (k) {
                c[starter] = k;
                continue;
            }
        }
        if (cc == 0) starter = m;
        last_cc  = cc;
        c[m++]   = c[i];
    }
    for (size_t i = 0; i < m; i++) {
        char b[4];
        int  len = tk_utf8_encode(c[i], b);
        if (!tk_buf_append(out, b, (size_t)len)) return false;
    }
    seg->n = 0;
    return true;
}

bool tk_nfc(const char *s, size_t len, tk_buf *out) {
    cp_vec seg = {0};
    bool   ok  = tk_buf_reserve(out, len + 1);
    size_t i   = 0;
    while (ok && i < len) {
        uint32_t cp;
        int      n = tk_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (n == 0) { /* not UTF-8: copied as is, the segment ends */
            ok = flush(&seg, out) && tk_buf_append(out, s + i, 1);
            i++;
            continue;
        }
        /* below U+0300: class 0 and never the second of a composite (the smallest second is
         * U+0300), so nothing before it can change: the segment before it is final */
        if (cp < 0x300) ok = flush(&seg, out);
        uint32_t d[4];
        int      nd = decompose(cp, d);
        for (int k = 0; k < nd && ok; k++) ok = push_cp(&seg, d[k]);
        i += (size_t)n;
    }
    if (ok) ok = flush(&seg, out);
    free(seg.v);
    return ok;
}
