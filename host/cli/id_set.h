/* A set of strings (the custom_ids of a batch job's output, for resume and merging): open
 * addressing with linear probing over owned copies. A zero-initialised id_set is empty. */
#ifndef LLMRT_CLI_ID_SET_H
#define LLMRT_CLI_ID_SET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct id_set {
    char **slots; /* [cap] owned strings, NULL = empty; cap is 0 or a power of two */
    size_t n, cap;
} id_set;

bool id_set_has(const id_set *s, const char *id);
/* Adds a copy of id (a no-op when present). Returns false when out of memory (the set is
 * unchanged). */
bool id_set_add(id_set *s, const char *id);
void id_set_free(id_set *s);

#endif
