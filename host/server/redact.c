/* llmrt serve: personal-data redaction of logged text (see redact.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "redact.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Applied in this order, each over the previous one's output: e-mail first (addresses hold
 * digits), then IDs (a 123-45-6789 group would otherwise read as a phone number), then phones. */
enum { R_EMAIL, R_ID, R_PHONE, R_COUNT };

static const struct {
    const char *pattern, *label;
    int         min_digits; /* a match with fewer digits is left alone */
    bool        need_sep;   /* a phone number has a separator or a +: a bare 7-8 digit run and a
                               date (2024-01-15) are not one */
} RULES[R_COUNT] = {
    [R_EMAIL] = {"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                 "(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\\.[A-Za-z]{2,}",
                 "[EMAIL]", 0, false},
    [R_ID]    = {"(?<![\\w+.-])(?:\\d{3}-\\d{2}-\\d{4}|\\d{9,})(?![\\w]|[.-]\\d)", "[ID]", 0, false},
    [R_PHONE] = {"(?<![\\w+.])(?:\\+\\d{1,3}[ .-]?)?(?:\\(\\d{1,4}\\)[ .-]?)?\\d{1,4}"
                 "(?:[ .-]?\\d{2,4}){1,5}(?![\\w]|[.-]\\d)",
                 "[PHONE]", 7, true},
};

struct srv_redactor {
    pcre2_code *code[R_COUNT];
};

void srv_redactor_destroy(srv_redactor *r) {
    if (!r) return;
    for (int i = 0; i < R_COUNT; i++) pcre2_code_free(r->code[i]);
    free(r);
}

srv_redactor *srv_redactor_create(char *err, size_t err_size) {
    srv_redactor *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    for (int i = 0; i < R_COUNT; i++) {
        int        ec;
        PCRE2_SIZE off;
        r->code[i] = pcre2_compile((PCRE2_SPTR)RULES[i].pattern, PCRE2_ZERO_TERMINATED, 0,
                                   &ec, &off, NULL);
        if (!r->code[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            snprintf(err, err_size, "redaction pattern %d at %zu: %s", i, (size_t)off, (char *)msg);
            srv_redactor_destroy(r);
            return NULL;
        }
        (void)pcre2_jit_compile(r->code[i], PCRE2_JIT_COMPLETE); /* the interpreter otherwise */
    }
    return r;
}

typedef struct buf {
    char  *p;
    size_t len, cap;
    bool   oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p   = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* One rule over text[0..len): the result in *out (malloc'd), false when out of memory. */
static bool apply(const srv_redactor *r, int rule, const char *text, size_t len, buf *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->code[rule], NULL);
    if (!md) return false;
    size_t at = 0, copied = 0;
    while (at <= len) {
        int rc = pcre2_match(r->code[rule], (PCRE2_SPTR)text, len, at, 0, md, NULL);
        if (rc < 0) break; /* no match (or an error: the rest stays as it is) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t      s = ov[0], e = ov[1];
        if (e <= s) { /* empty match: cannot happen with these patterns; step on */
            at = s + 1;
            continue;
        }
        int digits = 0;
        for (size_t k = s; k < e; k++) digits += text[k] >= '0' && text[k] <= '9';
        bool sep = false;
        for (size_t k = s; k < e; k++) sep |= !(text[k] >= '0' && text[k] <= '9');
        bool date = e - s == 10 && (text[s + 4] == '-' || text[s + 4] == '.' || text[s + 4] == '/') &&
                    text[s + 7] == text[s + 4];
        if (digits >= RULES[rule].min_digits && (!RULES[rule].need_sep || (sep && !date))) {
            put(out, text + copied, s - copied);
            put(out, RULES[rule].label, strlen(RULES[rule].label));
            copied = e;
        }
        at = e;
    }
    put(out, text + copied, len - copied);
    pcre2_match_data_free(md);
    return !out->oom;
}

char *srv_redact(const srv_redactor *r, const char *text, size_t len, size_t *out_len) {
    buf cur = {0};
    put(&cur, text ? text : "", text ? len : 0);
    if (cur.oom) return NULL;
    for (int i = 0; i < R_COUNT; i++) {
        buf next = {0};
        bool ok  = apply(r, i, cur.p, cur.len, &next);
        free(cur.p);
        if (!ok) {
            free(next.p);
            return NULL;
        }
        cur = next;
        if (!cur.p) put(&cur, "", 0);
        if (cur.oom) return NULL;
    }
    if (out_len) *out_len = cur.len;
    return cur.p;
}
