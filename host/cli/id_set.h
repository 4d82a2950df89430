/* A set of strings (the custom_ids of a batch job's output, for resume and merging). */
#ifndef LLMRT_CLI_ID_SET_H
#define LLMRT_CLI_ID_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "../tokenizer/strmap.h"

typedef struct id_set {
    char    **ids; /* owned strings, the map's keys */
    size_t    n, cap;
    tk_strmap map;
} id_set;

bool id_set_has(const id_set *s, const char *id);
/* Adds a copy of id (a no-op when present; silently dropped when out of memory). */
void id_set_add(id_set *s, const char *id);
void id_set_free(id_set *s);

#endif
