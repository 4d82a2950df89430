/* UTF-8 helpers for the tokenizer: decoding one character, replacing invalid sequences with
 * U+FFFD, the GPT-2 byte <-> character table of byte-level BPE, and Unicode White_Space. */
#ifndef LLMRT_TOKENIZER_UNICODE_H
#define LLMRT_TOKENIZER_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk_util.h"

/* Length (1..4) of the well-formed UTF-8 character at s[0..len), with its code point in *cp;
 * 0 if the bytes there are not a well-formed character (or len == 0). */
int tk_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* Length of the character starting with lead byte c, assuming valid UTF-8 (1 for stray bytes). */
static inline int tk_utf8_len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xe0 ? (c < 0xc0 ? 1 : 2) : c < 0xf0 ? 3 : 4;
}

/* Appends cp (<= 0x10FFFF, not a surrogate) as UTF-8; returns the byte count (1..4). */
int tk_utf8_encode(uint32_t cp, char out[4]);

/* Appends s[0..len) to out with every invalid sequence replaced by U+FFFD, one per maximal
 * subpart (the Unicode / WHATWG / Python errors="replace" / Rust from_utf8_lossy policy).
 * Returns false on allocation failure. */
bool tk_utf8_sanitize(const char *s, size_t len, tk_buf *out);

/* Length (0..3) of an incomplete but so far well-formed UTF-8 sequence at the end of s[0..len):
 * bytes that a continuation could still turn into a character. */
size_t tk_utf8_incomplete_tail(const char *s, size_t len);

/* Length of the longest prefix of s[0..len) that is well-formed UTF-8 (fast path: all ASCII). */
size_t tk_utf8_valid_prefix(const char *s, size_t len);

/* Unicode White_Space (what Rust's char::is_whitespace tests). */
bool tk_is_whitespace(uint32_t cp);

/* Appends the Unicode NFC form of s[0..len) (unicode_nfc.c; invalid UTF-8 bytes copied as is).
 * Returns false on allocation failure. */
bool tk_nfc(const char *s, size_t len, tk_buf *out);

/* GPT-2 bytes_to_unicode: the printable character standing for each byte in byte-level BPE. */
extern const uint16_t tk_byte_to_cp[256];
/* Inverse: byte of a byte-level character, or -1 if cp stands for no byte. */
int tk_cp_to_byte(uint32_t cp);

/* Appends the byte-level form of bytes s[0..len) (each byte -> its character, UTF-8 encoded). */
bool tk_bytelevel_encode(const char *s, size_t len, tk_buf *out);

#endif
