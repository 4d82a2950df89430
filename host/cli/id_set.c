#include "id_set.h"

#include <stdlib.h>
#include <string.h>

bool id_set_has(const id_set *s, const char *id) {
    return s->map.slots && tk_strmap_get(&s->map, id, strlen(id)) >= 0;
}

void id_set_add(id_set *s, const char *id) {
    if (id_set_has(s, id)) return;
    if (!s->map.slots && !tk_strmap_init(&s->map, 1024)) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char **ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) return;
        s->ids = ids;
        s->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy) return;
    s->ids[s->n++] = copy;
    tk_strmap_put(&s->map, copy, strlen(copy), 1, NULL);
}

void id_set_free(id_set *s) {
    for (size_t k = 0; k < s->n; k++) free(s->ids[k]);
    free(s->ids);
    tk_strmap_free(&s->map);
}
