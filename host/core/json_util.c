#include "json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mapped_file.h"

bool llmrt_utf8_valid(const char *text, uint64_t len) {
    const unsigned char *s = (const unsigned char *)text;
    uint64_t             i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int      n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
        else return false;
        if (len - i <= (uint64_t)n) return false;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += (uint64_t)n + 1;
    }
    return true;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Depth-first check for duplicate keys; returns the duplicated key or NULL. */
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

llmrt_status llmrt_json_parse(const char *text, uint64_t len, const char *what, cJSON **out,
                              llmrt_error *err) {
    *out = NULL;
    if (!llmrt_utf8_valid(text, len))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: JSON is not valid UTF-8", what);
    if (memchr(text, 0, (size_t)len))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: JSON contains a NUL byte", what);
    const char *end = NULL;
    cJSON      *root = cJSON_ParseWithLengthOpts(text, (size_t)len, &end, false);
    if (!root) {
        uint64_t at = end ? (uint64_t)(end - text) : 0;
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: invalid JSON near byte %llu", what,
                         (unsigned long long)at);
    }
    /* only whitespace may follow the value */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: trailing bytes after the JSON value",
                             what);
        }
    }
    bool        oom = false;
    const char *dup = find_duplicate_key(root, &oom);
    if (oom || dup) {
        llmrt_status s = oom ? llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", what)
                             : llmrt_err(err, LLMRT_ERR_FORMAT, "%s: duplicate JSON key \"%.200s\"",
                                         what, dup);
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return LLMRT_OK;
}

llmrt_status llmrt_json_parse_file(const char *path, uint64_t max_bytes, cJSON **out,
                                   llmrt_error *err) {
    *out      = NULL;
    char    *text;
    uint64_t len;
    LLMRT_TRY(llmrt_read_text_file(path, max_bytes, &text, &len, err));
    llmrt_status s = llmrt_json_parse(text, len, path, out, err);
    free(text);
    return s;
}

static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (item && !cJSON_IsNull(item)) ? item : NULL;
}

static llmrt_status missing(bool required, const char *key, const char *what, llmrt_error *err) {
    if (!required) return LLMRT_OK;
    return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: missing key \"%s\"", what, key);
}

llmrt_status llmrt_json_get_int(const cJSON *obj, const char *key, bool required, int64_t min,
                                int64_t max, int64_t *out, const char *what, llmrt_error *err) {
    const cJSON *item = member(obj, key);
    if (!item) return missing(required, key, what, err);
    double v = item->valuedouble;
    if (!cJSON_IsNumber(item) || !isfinite(v) || v != floor(v))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" must be an integer", what, key);
    /* (double)INT64_MAX rounds up to 2^63: compare against 2^63 itself so the cast is defined */
    if (v < (double)min || v > (double)max || v >= 9223372036854775808.0)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" = %.0f is outside [%lld, %lld]",
                         what, key, v, (long long)min, (long long)max);
    *out = (int64_t)v;
    return LLMRT_OK;
}

llmrt_status llmrt_json_get_i32(const cJSON *obj, const char *key, bool required, int32_t min,
                                int32_t max, int32_t *out, const char *what, llmrt_error *err) {
    int64_t v = 0;
    bool    present = member(obj, key) != NULL;
    LLMRT_TRY(llmrt_json_get_int(obj, key, required, min, max, &v, what, err));
    if (present) *out = (int32_t)v;
    return LLMRT_OK;
}

llmrt_status llmrt_json_get_double(const cJSON *obj, const char *key, bool required, double *out,
                                   const char *what, llmrt_error *err) {
    const cJSON *item = member(obj, key);
    if (!item) return missing(required, key, what, err);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" must be a finite number", what,
                         key);
    *out = item->valuedouble;
    return LLMRT_OK;
}

llmrt_status llmrt_json_get_bool(const cJSON *obj, const char *key, bool required, bool *out,
                                 const char *what, llmrt_error *err) {
    const cJSON *item = member(obj, key);
    if (!item) return missing(required, key, what, err);
    if (!cJSON_IsBool(item))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(item);
    return LLMRT_OK;
}

llmrt_status llmrt_json_get_string(const cJSON *obj, const char *key, bool required,
                                   const char **out, const char *what, llmrt_error *err) {
    const cJSON *item = member(obj, key);
    if (!item) return missing(required, key, what, err);
    if (!cJSON_IsString(item))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" must be a string", what, key);
    *out = item->valuestring;
    return LLMRT_OK;
}
