/* GPTQModel's "dynamic" per-module overrides (gptq.h): parsing, and the config of one module.
 *
 * GPTQModel (quantization/config.py, dynamic_get) keys the object by "+:regex", "-:regex" or a
 * bare regex; a module takes the overrides of the first key in file order whose regex matches
 * its name with Python's re.match (anchored at the start, not at the end); "-:" means the module
 * was left unquantized. The regexes are evaluated here as POSIX extended regexes: Python's \d,
 * \w and \s become their bracket classes; what POSIX lacks (lazy quantifiers, look-arounds,
 * (?...) groups) and what could make compiling costly (counted or stacked repetition) is refused
 * naming the pattern, never silently mismatched. */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "../core/json_util.h"
#include "gptq.h"

/* Python re pattern -> "^(...)" POSIX ERE; false when it uses what POSIX lacks or what could
 * make regcomp costly: no (?...), no lazy or stacked quantifiers ("a*?", "a++"), no counted
 * repetition ("{n,m}": glibc expands it, so nested counts would blow up memory). Inside a
 * bracket expression Python's escapes become literal characters or POSIX classes. */
static bool translate(const char *py, char *out, size_t cap) {
    size_t o = 0;
#define PUT(str)                                                                                   \
    do {                                                                                           \
        size_t l_ = strlen(str);                                                                   \
        if (o + l_ + 2 > cap) return false;                                                        \
        memcpy(out + o, str, l_);                                                                  \
        o += l_;                                                                                   \
    } while (0)
    PUT("^(");
    bool quantified = true; /* the previous token is a quantifier (or nothing: "^(") */
    for (const char *p = py; *p; p++) {
        if (*p == '[') { /* bracket expression: copied to its closing ']' */
            PUT("[");
            p++;
            if (*p == '^') {
                PUT("^");
                p++;
            }
            if (*p == ']') { /* a leading ']' is literal in both */
                PUT("]");
                p++;
            }
            for (; *p && *p != ']'; p++) {
                if (*p == '[') return false; /* POSIX classes/collating elements differ */
                if (*p != '\\') {
                    char one[2] = {*p, 0};
                    PUT(one);
                    continue;
                }
                char c = *++p;
                if (c == 'd')
                    PUT("0-9");
                else if (c == 'w')
                    PUT("A-Za-z0-9_");
                else if (c == 's')
                    PUT("[:space:]");
                else if (c && strchr(".*+?(){}|/$", c)) {
                    char one[2] = {c, 0}; /* literal in a POSIX bracket */
                    PUT(one);
                } else {
                    return false; /* \], \^, \-, \\, \D, ... */
                }
            }
            if (*p != ']') return false;
            PUT("]");
            quantified = false;
            continue;
        }
        if (*p == '{') return false;
        bool quant = *p == '*' || *p == '+' || *p == '?';
        if (quant && quantified) return false;        /* "a*?", "a++", "(*", "|+" */
        if (p[0] == '(' && p[1] == '?') return false; /* (?:...), look-arounds, flags */
        quantified = quant || *p == '(' || *p == '|';
        if (p[0] == '\\' && p[1]) {
            char c = p[1];
            p++;
            if (c == 'd')
                PUT("[0-9]");
            else if (c == 'D')
                PUT("[^0-9]");
            else if (c == 'w')
                PUT("[A-Za-z0-9_]");
            else if (c == 'W')
                PUT("[^A-Za-z0-9_]");
            else if (c == 's')
                PUT("[[:space:]]");
            else if (c == 'S')
                PUT("[^[:space:]]");
            else if (strchr(".^$*+?()[]{}|\\-/", c)) {
                char esc[3] = {'\\', c, 0};
                PUT(esc);
            } else {
                return false; /* \b, \A, \Z, backreferences, ... */
            }
            continue;
        }
        char one[2] = {*p, 0};
        PUT(one);
    }
    PUT(")");
    out[o] = 0;
    return true;
#undef PUT
}

static bool compiles(const char *regex) {
    regex_t re;
    if (regcomp(&re, regex, REG_EXTENDED | REG_NOSUB) != 0) return false;
    regfree(&re);
    return true;
}

/* A string override that must equal `base` (keys that change the file layout). */
static llmrt_status same_string(const cJSON *ov, const char *key, const char *base, const char *alt,
                                const char *what, const char *pattern, llmrt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ov, key);
    if (!v || cJSON_IsNull(v)) return LLMRT_OK;
    if (cJSON_IsString(v) &&
        (strcmp(v->valuestring, base) == 0 || (alt && strcmp(v->valuestring, alt) == 0)))
        return LLMRT_OK;
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                     "%s: dynamic \"%.120s\": %s %s%.64s%s differs from the base config's \"%s\" "
                     "(not supported)",
                     what, pattern, key, cJSON_IsString(v) ? "\"" : "",
                     cJSON_IsString(v) ? v->valuestring : "(not a string)",
                     cJSON_IsString(v) ? "\"" : "", base);
}

llmrt_status llmrt_gptq_dynamic_parse(const cJSON *dyn, llmrt_gptq_config *cfg, llmrt_error *err) {
    const char *what = cfg->what;
    cfg->n_dynamic = 0;
    if (!dyn || cJSON_IsNull(dyn)) return LLMRT_OK;
    if (!cJSON_IsObject(dyn))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"dynamic\" must be an object", what);
    for (const cJSON *e = dyn->child; e; e = e->next) {
        const char *key = e->string ? e->string : "";
        if (cfg->n_dynamic == LLMRT_GPTQ_MAX_DYNAMIC)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: \"dynamic\" has more than %d rules (not supported)", what,
                             LLMRT_GPTQ_MAX_DYNAMIC);
        llmrt_gptq_override *o = &cfg->dynamic[cfg->n_dynamic];
        memset(o, 0, sizeof *o);
        o->sym = o->desc_act = -1;
        snprintf(o->pattern, sizeof o->pattern, "%s", key);
        const char *rx = key;
        if (strncmp(key, "-:", 2) == 0)
            o->negative = true, rx = key + 2;
        else if (strncmp(key, "+:", 2) == 0)
            rx = key + 2;
        if (!translate(rx, o->regex, sizeof o->regex) || !compiles(o->regex))
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: dynamic \"%.120s\": the pattern is not supported (POSIX "
                             "extended regex plus \\d \\w \\s; no lazy, stacked or counted "
                             "repetition, no (?...))",
                             what, key);
        if (!cJSON_IsObject(e))
            return llmrt_err(err, LLMRT_ERR_FORMAT,
                             "%s: dynamic \"%.120s\": the overrides must be an object", what, key);
        char ctx[4400];
        snprintf(ctx, sizeof ctx, "%s: dynamic \"%.120s\"", what, key);
        if (cJSON_GetObjectItemCaseSensitive(e, "bits")) {
            LLMRT_TRY(
                llmrt_json_get_i32(e, "bits", true, INT32_MIN, INT32_MAX, &o->bits, ctx, err));
            if (o->bits != 4 && o->bits != 8)
                return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                                 "%s: bits = %d is not supported (supported: 4, 8)", ctx, o->bits);
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "group_size")) {
            LLMRT_TRY(llmrt_json_get_i32(e, "group_size", true, INT32_MIN, INT32_MAX,
                                         &o->group_size, ctx, err));
            if (o->group_size != -1 && (o->group_size <= 0 || o->group_size > (1 << 24)))
                return llmrt_err(err, LLMRT_ERR_FORMAT,
                                 "%s: group_size = %d is invalid (-1 or a positive column count)",
                                 ctx, o->group_size);
        }
        bool b;
        if (cJSON_GetObjectItemCaseSensitive(e, "sym")) {
            LLMRT_TRY(llmrt_json_get_bool(e, "sym", true, &b, ctx, err));
            o->sym = b;
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "desc_act")) {
            LLMRT_TRY(llmrt_json_get_bool(e, "desc_act", true, &b, ctx, err));
            o->desc_act = b;
        }
        const char *fmt = cfg->v2 ? "gptq_v2" : "gptq";
        LLMRT_TRY(same_string(e, "format", fmt, NULL, what, key, err));
        LLMRT_TRY(same_string(e, "checkpoint_format", fmt, NULL, what, key, err));
        LLMRT_TRY(same_string(e, "quant_method", "gptq", NULL, what, key, err));
        LLMRT_TRY(same_string(e, "method", "gptq", NULL, what, key, err));
        LLMRT_TRY(same_string(e, "pack_dtype", "int32", "torch.int32", what, key, err));
        cfg->n_dynamic++;
    }
    return LLMRT_OK;
}

void llmrt_gptq_config_for(const llmrt_gptq_config *cfg, const char *module, llmrt_gptq_config *out,
                           bool *excluded) {
    *out = *cfg;
    *excluded = false;
    for (int32_t i = 0; i < cfg->n_dynamic; i++) {
        const llmrt_gptq_override *o = &cfg->dynamic[i];
        regex_t re;
        if (regcomp(&re, o->regex, REG_EXTENDED | REG_NOSUB) != 0) continue; /* checked at parse */
        bool hit = regexec(&re, module, 0, NULL, 0) == 0;
        regfree(&re);
        if (!hit) continue;
        if (o->negative) {
            *excluded = true;
            return;
        }
        if (o->bits) out->bits = o->bits;
        if (o->group_size) out->group_size = o->group_size;
        if (o->sym >= 0) out->sym = o->sym;
        if (o->desc_act >= 0) out->desc_act = o->desc_act;
        return;
    }
}
