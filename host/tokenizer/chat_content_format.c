/* Which content a model's template expects: strings, or OpenAI content-part lists it iterates
 * over. vLLM decides this per template ("content format", chat_utils._detect_content_format):
 * a template that loops over a message's content takes the list as given; for any other, text
 * parts are joined into one string first. This is the same rule on the template source. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "tokenizer.h"

#define MAX_VARS 32

/* s[0..n) without its spaces, into buf (truncated to cap - 1). */
static void squeeze(const char *s, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        if (!isspace((unsigned char)s[i])) buf[k++] = s[i];
    buf[k] = 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* An expression (spaces removed, filters cut off) that reads a message's content. */
static bool reads_content(const char *expr) {
    return ends_with(expr, "['content']") || ends_with(expr, "[\"content\"]") ||
           ends_with(expr, ".content");
}

/* The expression of a statement up to a filter or a trailing `if` (a for's condition). */
static size_t expr_len(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '|') return i;
        if (i > 0 && isspace((unsigned char)s[i - 1]) && n - i >= 3 && !strncmp(s + i, "if", 2) &&
            isspace((unsigned char)s[i + 2]))
            return i;
    }
    return n;
}

bool llmrt_chat_source_iterates_content(const char *src) {
    char vars[MAX_VARS][64];
    int n_vars = 0;
    for (const char *p = strstr(src, "{%"); p; p = strstr(p, "{%")) {
        const char *b = p + 2, *e = strstr(b, "%}");
        if (!e) break;
        p = e + 2;
        if (*b == '-' || *b == '+') b++;
        if (e > b && (e[-1] == '-' || e[-1] == '+')) e--;
        while (b < e && isspace((unsigned char)*b))
            b++;
        size_t n = (size_t)(e - b);
        char expr[256];
        if (n > 4 && !strncmp(b, "for", 3) && isspace((unsigned char)b[3])) {
            const char *in = NULL;
            for (const char *q = b + 3; q + 4 <= e && !in; q++)
                if (isspace((unsigned char)q[0]) && !strncmp(q + 1, "in", 2) &&
                    isspace((unsigned char)q[3]))
                    in = q + 4;
            if (!in) continue;
            squeeze(in, expr_len(in, (size_t)(e - in)), expr, sizeof expr);
            if (reads_content(expr)) return true;
            for (int k = 0; k < n_vars; k++)
                if (!strcmp(expr, vars[k])) return true;
        } else if (n > 4 && !strncmp(b, "set", 3) && isspace((unsigned char)b[3])) {
            const char *eq = memchr(b, '=', n);
            if (!eq || n_vars == MAX_VARS) continue;
            squeeze(eq + 1, expr_len(eq + 1, (size_t)(e - eq - 1)), expr, sizeof expr);
            if (!reads_content(expr)) continue;
            squeeze(b + 3, (size_t)(eq - b - 3), vars[n_vars], sizeof vars[n_vars]);
            n_vars++;
        }
    }
    return false;
}

bool llmrt_chat_template_iterates_content(const llmrt_tokenizer *tk, const char *family_name) {
    if (family_name || !tk) return false;
    const char *src = llmrt_tokenizer_chat_template(tk);
    return src && llmrt_chat_source_iterates_content(src);
}
