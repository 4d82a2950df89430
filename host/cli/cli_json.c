#include "cli_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_utf8_valid(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t               i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t   n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
        else return false;
        if (len - i <= n) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Depth-first search for a duplicated object key; returns it, or NULL (*oom on a failed
 * allocation). */
static const char *find_duplicate_key(const cJSON *node, bool *oom) {
    for (const cJSON *child = node ? node->child : NULL; child; child = child->next) {
        const char *dup = find_duplicate_key(child, oom);
        if (dup || *oom) return dup;
    }
    if (!cJSON_IsObject(node)) return NULL;
    size_t n = 0;
    for (const cJSON *c = node->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    const char **names = malloc(n * sizeof *names);
    if (!names) {
        *oom = true;
        return NULL;
    }
    size_t i = 0;
    for (const cJSON *c = node->child; c; c = c->next) names[i++] = c->string ? c->string : "";
    qsort(names, n, sizeof *names, compare_names);
    const char *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
    free(names);
    return dup;
}

int cli_json_parse(const char *text, size_t len, const char *what, cJSON **out, char *msg,
                   size_t msg_size) {
    *out = NULL;
    if (msg_size) msg[0] = 0;
    if (len && !text) {
        snprintf(msg, msg_size, "%s: no text", what);
        return -1;
    }
    if (!cli_utf8_valid(text, len)) {
        snprintf(msg, msg_size, "%s: JSON is not valid UTF-8", what);
        return -1;
    }
    if (len && memchr(text, 0, len)) {
        snprintf(msg, msg_size, "%s: JSON contains a NUL byte", what);
        return -1;
    }
    /* "\u0000" decodes to a NUL, where cJSON's strings end: a custom_id or prompt holding one
     * would come back cut short. A backslash occurs only inside strings, and the character
     * after it is skipped, so "\\u0000" (a backslash, then text) is not taken for one. */
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\') continue;
        if (len - i >= 6 && !memcmp(text + i + 1, "u0000", 5)) {
            snprintf(msg, msg_size, "%s: a JSON string holds \\u0000 (a NUL character)", what);
            return -1;
        }
        i++;
    }
    const char *end  = NULL;
    cJSON      *root = cJSON_ParseWithLengthOpts(text ? text : "", len, &end, false);
    if (!root) {
        size_t at = end && text ? (size_t)(end - text) : 0;
        snprintf(msg, msg_size, "%s: invalid JSON near byte %zu", what, at);
        return -1;
    }
    /* only whitespace may follow the value */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            snprintf(msg, msg_size, "%s: trailing bytes after the JSON value", what);
            return -1;
        }
    }
    bool        oom = false;
    const char *dup = find_duplicate_key(root, &oom);
    if (oom || dup) {
        if (oom) snprintf(msg, msg_size, "%s: out of memory", what);
        else snprintf(msg, msg_size, "%s: duplicate JSON key \"%.200s\"", what, dup);
        cJSON_Delete(root);
        return -1;
    }
    *out = root;
    return 0;
}

int cli_json_int(const cJSON *v, const char *field, int64_t min, int64_t max, int64_t *out,
                 char *msg, size_t msg_size) {
    if (!cJSON_IsNumber(v)) {
        snprintf(msg, msg_size, "\"%s\" must be a number (an integer in [%lld, %lld])", field,
                 (long long)min, (long long)max);
        return -1;
    }
    double d = v->valuedouble;
    /* compare as doubles before converting: (int64_t)1e300 is undefined behaviour; min and max
     * are well inside 2^53 for every caller, so their conversions to double are exact */
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
        snprintf(msg, msg_size, "\"%s\" must be an integer in [%lld, %lld], got %.17g", field,
                 (long long)min, (long long)max, d);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

int cli_json_float(const cJSON *v, const char *field, double min, double max, float *out,
                   char *msg, size_t msg_size) {
    if (!cJSON_IsNumber(v)) {
        snprintf(msg, msg_size, "\"%s\" must be a number", field);
        return -1;
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d < min || d > max) {
        snprintf(msg, msg_size, "\"%s\" must be a finite number in [%g, %g], got %.17g", field,
                 min, max, d);
        return -1;
    }
    *out = (float)d;
    return 0;
}
