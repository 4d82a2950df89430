/* Checked command-line values (see cli_args.h). */
#include "cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* strtoll/strtod skip leading white space and accept an empty string as "no number": neither is
 * a value here. */
static int starts_ok(const char *arg) {
    return arg && arg[0] && !isspace((unsigned char)arg[0]);
}

/* The integer at s (decimal, optional sign) ending at *end; false on overflow or no digits. */
static int scan_i64(const char *s, char **end, long long *out) {
    if (!starts_ok(s)) return 0;
    errno = 0;
    long long v = strtoll(s, end, 10);
    if (errno || *end == s) return 0;
    *out = v;
    return 1;
}

int cli_arg_i64(const char *opt, const char *arg, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    long long v;
    if (!scan_i64(arg, &end, &v) || *end || v < lo || v > hi) {
        fprintf(stderr, "llmrt: %s must be an integer in [%lld, %lld], got \"%s\"\n", opt,
                (long long)lo, (long long)hi, arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_arg_i32(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t *out) {
    int64_t v;
    if (cli_arg_i64(opt, arg, lo, hi, &v) < 0) return -1;
    *out = (int32_t)v; /* in [lo, hi]: checked */
    return 0;
}

int cli_arg_int(const char *opt, const char *arg, int lo, int hi, int *out) {
    int64_t v;
    if (cli_arg_i64(opt, arg, lo, hi, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

int cli_arg_u64(const char *opt, const char *arg, uint64_t hi, uint64_t *out) {
    char *end = NULL;
    unsigned long long v = 0;
    int ok = starts_ok(arg) && isdigit((unsigned char)arg[0]);
    if (ok) {
        errno = 0;
        v = strtoull(arg, &end, 10);
        ok = !errno && end != arg && !*end && v <= hi;
    }
    if (!ok) {
        fprintf(stderr, "llmrt: %s must be an integer in [0, %llu], got \"%s\"\n", opt,
                (unsigned long long)hi, arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_arg_double(const char *opt, const char *arg, double lo, double hi, double *out) {
    char *end = NULL;
    double v = 0;
    int ok = starts_ok(arg);
    if (ok) {
        errno = 0;
        v = strtod(arg, &end);
        /* ERANGE on underflow gives a tiny or zero value, which the range below judges; on
         * overflow v is +-HUGE_VAL, not finite */
        ok = end != arg && !*end && isfinite(v) && v >= lo && v <= hi;
    }
    if (!ok) {
        fprintf(stderr, "llmrt: %s must be a finite number in [%g, %g], got \"%s\"\n", opt, lo, hi,
                arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_arg_float(const char *opt, const char *arg, double lo, double hi, float *out) {
    double v;
    /* a float holds +-3.4e38 at most: a wider range would convert with undefined behaviour */
    if (lo < -3.4e38) lo = -3.4e38;
    if (hi > 3.4e38) hi = 3.4e38;
    if (cli_arg_double(opt, arg, lo, hi, &v) < 0) return -1;
    *out = (float)v;
    return 0;
}

int cli_arg_enum(const char *opt, const char *arg, const char *const *names, int *out) {
    for (int i = 0; names[i]; i++)
        if (arg && !strcmp(arg, names[i])) {
            *out = i;
            return 0;
        }
    char list[256];
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; names[i] && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
    fprintf(stderr, "llmrt: %s must be one of %s, got \"%s\"\n", opt, list, arg ? arg : "");
    return -1;
}

int cli_arg_range(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t *min,
                  int32_t *max) {
    char *end;
    long long a, b;
    int ok = scan_i64(arg, &end, &a);
    if (ok && *end == ':') {
        const char *p = end + 1;
        ok = scan_i64(p, &end, &b) && !*end;
    } else {
        b = a;
        ok = ok && !*end;
    }
    if (!ok || a < lo || a > b || b > hi) {
        fprintf(stderr, "llmrt: %s must be N or MIN:MAX with %d <= MIN <= MAX <= %d, got \"%s\"\n",
                opt, lo, hi, arg ? arg : "");
        return -1;
    }
    *min = (int32_t)a;
    *max = (int32_t)b;
    return 0;
}

int32_t cli_arg_int_list(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t max_n,
                         int32_t **out) {
    *out = NULL;
    if (!arg || !arg[0]) {
        fprintf(stderr, "llmrt: %s must be a comma-separated list of integers, got \"\"\n", opt);
        return -1;
    }
    size_t cap = 16;
    int32_t n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        fprintf(stderr, "llmrt: %s: out of memory\n", opt);
        return -1;
    }
    const char *p = arg;
    for (;;) {
        char *end;
        long long x;
        if (!scan_i64(p, &end, &x) || (*end && *end != ',')) {
            fprintf(stderr, "llmrt: %s must be a comma-separated list of integers, got \"%s\"\n",
                    opt, arg);
            break;
        }
        if (x < lo || x > hi) {
            fprintf(stderr, "llmrt: %s: each value must be in [%d, %d], got %lld\n", opt, lo, hi,
                    x);
            break;
        }
        if (n == max_n) {
            fprintf(stderr, "llmrt: %s holds more than %d values\n", opt, max_n);
            break;
        }
        if ((size_t)n == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                fprintf(stderr, "llmrt: %s: out of memory\n", opt);
                break;
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        if (!*end) {
            *out = v;
            return n;
        }
        p = end + 1; /* "1," ends in an empty item: scan_i64 refuses it */
    }
    free(v);
    return -1;
}
