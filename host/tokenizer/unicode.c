#include "unicode.h"

#include <string.h>

int tk_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int     n;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (len < (size_t)n || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0xff >> (n + 1));
    for (int k = 1; k < n; k++) {
        if (k > 1 && (s[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    *cp = v;
    return n;
}

int tk_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Number of bytes at s[0..len) (len >= 1, s[0] not a valid character start) that form one
 * maximal subpart: the longest prefix of a well-formed sequence, at least one byte. */
static size_t maximal_subpart(const uint8_t *s, size_t len) {
    uint8_t c = s[0];
    int     n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 1;
    size_t k = 1;
    if (k < len && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k < (size_t)n && k < len && (s[k] & 0xc0) == 0x80) k++;
    }
    return k;
}

size_t tk_utf8_incomplete_tail(const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        uint8_t c = u[len - k];
        if ((c & 0xc0) == 0x80) continue; /* a continuation byte: look further back */
        if (c < 0xc2 || c > 0xf4) return 0;
        size_t need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        return k < need && maximal_subpart(u + len - k, k) == k ? k : 0;
    }
    return 0;
}

size_t tk_utf8_valid_prefix(const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    size_t         i = 0;
    while (i < len) {
        /* skip ASCII 8 bytes at a time: the common case */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int      n = tk_utf8_decode(u + i, len - i, &cp);
        if (!n) return i;
        i += (size_t)n;
    }
    return len;
}

bool tk_utf8_sanitize(const char *s, size_t len, tk_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t         i = 0;
    while (i < len) {
        size_t ok = tk_utf8_valid_prefix(s + i, len - i);
        if (!tk_buf_append(out, s + i, ok)) return false;
        i += ok;
        if (i >= len) break;
        i += maximal_subpart(u + i, len - i);
        if (!tk_buf_append(out, "\xef\xbf\xbd", 3)) return false;
    }
    return true;
}

bool tk_is_whitespace(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0d);
    if (cp < 0x85) return false;
    switch (cp) {
    case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
 * themselves; the other 68 bytes map, in byte order, to U+0100.. U+0143. */
const uint16_t tk_byte_to_cp[256] = {
    0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10a, 0x10b,
    0x10c, 0x10d, 0x10e, 0x10f, 0x110, 0x111, 0x112, 0x113, 0x114, 0x115, 0x116, 0x117,
    0x118, 0x119, 0x11a, 0x11b, 0x11c, 0x11d, 0x11e, 0x11f, 0x120, 0x021, 0x022, 0x023,
    0x024, 0x025, 0x026, 0x027, 0x028, 0x029, 0x02a, 0x02b, 0x02c, 0x02d, 0x02e, 0x02f,
    0x030, 0x031, 0x032, 0x033, 0x034, 0x035, 0x036, 0x037, 0x038, 0x039, 0x03a, 0x03b,
    0x03c, 0x03d, 0x03e, 0x03f, 0x040, 0x041, 0x042, 0x043, 0x044, 0x045, 0x046, 0x047,
    0x048, 0x049, 0x04a, 0x04b, 0x04c, 0x04d, 0x04e, 0x04f, 0x050, 0x051, 0x052, 0x053,
    0x054, 0x055, 0x056, 0x057, 0x058, 0x059, 0x05a, 0x05b, 0x05c, 0x05d, 0x05e, 0x05f,
    0x060, 0x061, 0x062, 0x063, 0x064, 0x065, 0x066, 0x067, 0x068, 0x069, 0x06a, 0x06b,
    0x06c, 0x06d, 0x06e, 0x06f, 0x070, 0x071, 0x072, 0x073, 0x074, 0x075, 0x076, 0x077,
    0x078, 0x079, 0x07a, 0x07b, 0x07c, 0x07d, 0x07e, 0x121, 0x122, 0x123, 0x124, 0x125,
    0x126, 0x127, 0x128, 0x129, 0x12a, 0x12b, 0x12c, 0x12d, 0x12e, 0x12f, 0x130, 0x131,
    0x132, 0x133, 0x134, 0x135, 0x136, 0x137, 0x138, 0x139, 0x13a, 0x13b, 0x13c, 0x13d,
    0x13e, 0x13f, 0x140, 0x141, 0x142, 0x0a1, 0x0a2, 0x0a3, 0x0a4, 0x0a5, 0x0a6, 0x0a7,
    0x0a8, 0x0a9, 0x0aa, 0x0ab, 0x0ac, 0x143, 0x0ae, 0x0af, 0x0b0, 0x0b1, 0x0b2, 0x0b3,
    0x0b4, 0x0b5, 0x0b6, 0x0b7, 0x0b8, 0x0b9, 0x0ba, 0x0bb, 0x0bc, 0x0bd, 0x0be, 0x0bf,
    0x0c0, 0x0c1, 0x0c2, 0x0c3, 0x0c4, 0x0c5, 0x0c6, 0x0c7, 0x0c8, 0x0c9, 0x0ca, 0x0cb,
    0x0cc, 0x0cd, 0x0ce, 0x0cf, 0x0d0, 0x0d1, 0x0d2, 0x0d3, 0x0d4, 0x0d5, 0x0d6, 0x0d7,
    0x0d8, 0x0d9, 0x0da, 0x0db, 0x0dc, 0x0dd, 0x0de, 0x0df, 0x0e0, 0x0e1, 0x0e2, 0x0e3,
    0x0e4, 0x0e5, 0x0e6, 0x0e7, 0x0e8, 0x0e9, 0x0ea, 0x0eb, 0x0ec, 0x0ed, 0x0ee, 0x0ef,
    0x0f0, 0x0f1, 0x0f2, 0x0f3, 0x0f4, 0x0f5, 0x0f6, 0x0f7, 0x0f8, 0x0f9, 0x0fa, 0x0fb,
    0x0fc, 0x0fd, 0x0fe, 0x0ff,
};

int tk_cp_to_byte(uint32_t cp) {
    if (cp >= 0x21 && cp <= 0x7e) return (int)cp;
    if (cp >= 0xa1 && cp <= 0xac) return (int)cp;
    if (cp >= 0xae && cp <= 0xff) return (int)cp;
    if (cp < 0x100 || cp > 0x143) return -1;
    /* the n-th non-printable byte (in byte order) maps to 0x100 + n */
    uint32_t n = cp - 0x100;
    if (n <= 0x20) return (int)n;                /* 0x00..0x20 */
    if (n <= 0x20 + 34) return (int)(0x7f + n - 0x21); /* 0x7f..0xa0 */
    if (n == 0x20 + 35) return 0xad;
    return -1;
}

bool tk_bytelevel_encode(const char *s, size_t len, tk_buf *out) {
    if (!tk_buf_reserve(out, len * 2 + 1)) return false;
    char *dst = out->p + out->n;
    for (size_t i = 0; i < len; i++) {
        uint16_t cp = tk_byte_to_cp[(uint8_t)s[i]];
        if (cp < 0x80) {
            *dst++ = (char)cp;
        } else {
            *dst++ = (char)(0xc0 | (cp >> 6));
            *dst++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    out->n = (size_t)(dst - out->p);
    out->p[out->n] = 0;
    return true;
}
