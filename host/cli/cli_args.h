/* Checked command-line values: every numeric or enum option of every subcommand (llmrt and
 * llmrt bench) goes through these. A value must be the whole argument (no leading space, no
 * trailing bytes, not empty), within its range, and for floating point finite (strtod takes
 * "nan" and "inf"); an unsigned value refuses a sign (strtoull turns "-1" into 2^64-1). On a bad
 * value the result is -1 and one line on stderr names the option and says what it takes; *out
 * is left unchanged. */
#ifndef LLMRT_CLI_ARGS_H
#define LLMRT_CLI_ARGS_H

#include <stdint.h>

/* `opt` is the option as the user wrote it, for messages ("--seed", "THREADS"). */
int cli_arg_i64(const char *opt, const char *arg, int64_t lo, int64_t hi, int64_t *out);
int cli_arg_i32(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t *out);
int cli_arg_int(const char *opt, const char *arg, int lo, int hi, int *out);
/* A non-negative integer up to hi, as written in decimal. */
int cli_arg_u64(const char *opt, const char *arg, uint64_t hi, uint64_t *out);
/* A finite number in [lo, hi]. */
int cli_arg_double(const char *opt, const char *arg, double lo, double hi, double *out);
int cli_arg_float(const char *opt, const char *arg, double lo, double hi, float *out);
/* One of `names` (NULL-terminated): *out is its index. The message lists them. */
int cli_arg_enum(const char *opt, const char *arg, const char *const *names, int *out);
/* "N" or "MIN:MAX" with lo <= MIN <= MAX <= hi ("N" gives MIN = MAX = N). */
int cli_arg_range(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t *min,
                  int32_t *max);
/* "A,B,C": 1 to max_n integers, each in [lo, hi], into a malloc'd array (*out, free it); the
 * count, or -1 with *out NULL (nothing leaks). An empty list or an empty item is refused. */
int32_t cli_arg_int_list(const char *opt, const char *arg, int32_t lo, int32_t hi, int32_t max_n,
                         int32_t **out);

#endif
