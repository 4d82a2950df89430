#define PCRE2_CODE_UNIT_WIDTH 8
#include "tk_regex.h"

#include <pcre2.h>
#include <stdlib.h>

const char TK_REGEX_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char TK_REGEX_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char TK_REGEX_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* A regex from a tokenizer file may backtrack badly; bound the work per match call rather than
 * hang (the default PCRE2 limit is 10 million). */
#define TK_MATCH_LIMIT 20000000u

struct tk_regex {
    pcre2_code *code;
};

struct tk_match_scratch {
    pcre2_match_data    *md;
    pcre2_match_context *mc;
    pcre2_jit_stack     *js;
};

llmrt_status tk_regex_compile(const char *pattern, size_t len, const char *what, tk_regex **out,
                              llmrt_error *err) {
    *out = NULL;
    int        ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: regex \"%.120s\" does not compile at offset %zu: %s",
                         what, pattern, (size_t)eo, (const char *)msg);
    }
    /* JIT is an optimisation: if it is unavailable the interpreter gives the same matches */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    tk_regex *re = malloc(sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    re->code = code;
    *out     = re;
    return LLMRT_OK;
}

void tk_regex_free(tk_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

tk_match_scratch *tk_match_scratch_create(void) {
    tk_match_scratch *ms = calloc(1, sizeof *ms);
    if (!ms) return NULL;
    /* one pair is enough: only the whole match is used (a smaller ovector than the pattern's
     * group count is allowed; pcre2_match then returns 0 for a match) */
    ms->md = pcre2_match_data_create(1, NULL);
    ms->mc = pcre2_match_context_create(NULL);
    if (!ms->md || !ms->mc) {
        tk_match_scratch_free(ms);
        return NULL;
    }
    pcre2_set_match_limit(ms->mc, TK_MATCH_LIMIT);
    return ms;
}

void tk_match_scratch_free(tk_match_scratch *ms) {
    if (!ms) return;
    pcre2_match_data_free(ms->md);
    pcre2_match_context_free(ms->mc);
    pcre2_jit_stack_free(ms->js);
    free(ms);
}

llmrt_status tk_regex_find(const tk_regex *re, tk_match_scratch *ms, const char *s, size_t len,
                           size_t start, bool *found, size_t *mstart, size_t *mend,
                           llmrt_error *err) {
    *found = false;
    if (start > len) return LLMRT_OK;
    static const char empty[1] = {0};
    PCRE2_SPTR subject = (PCRE2_SPTR)(s ? s : empty);
    int rc = pcre2_match(re->code, subject, len, start, PCRE2_NO_UTF_CHECK, ms->md, ms->mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !ms->js) {
        /* the default 32 KiB JIT stack is too small for this subject: retry with a big one */
        ms->js = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
        if (!ms->js) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "regex: out of memory");
        pcre2_jit_stack_assign(ms->mc, NULL, ms->js);
        rc = pcre2_match(re->code, subject, len, start, PCRE2_NO_UTF_CHECK, ms->md, ms->mc);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return LLMRT_OK;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return llmrt_err(err, rc == PCRE2_ERROR_NOMEMORY ? LLMRT_ERR_OUT_OF_MEMORY
                                                         : LLMRT_ERR_UNSUPPORTED,
                         "pre-tokenizer regex match failed: %s", (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ms->md);
    *found  = true;
    *mstart = ov[0];
    *mend   = ov[1];
    if (*mend < *mstart) *mend = *mstart; /* \K can do this; treat as empty */
    return LLMRT_OK;
}
