/* GET /openapi.json: the document of host/server/openapi.json (compiled in as srv_openapi_json
 * by cmake/embed_text.cmake) with the loaded model's limits filled in, so that a schema-driven
 * client (schemathesis, a generated SDK) knows which token ids are valid: each
 * `"x-llmrt-maximum": "token_id"` member becomes `"maximum": <vocab_size - 1>`.
 *
 * A text substitution, not a cJSON round trip: cJSON prints numbers with 15 significant digits,
 * which would turn the seed bound 9007199254740991 into 9.00719925474099e+15 and make the
 * document disagree with the server by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

extern const char srv_openapi_json[];

#define TOKEN_ID_MARK "\"x-llmrt-maximum\": \"token_id\""

char *srv_openapi_document(int32_t vocab_size) {
    char bound[48];
    int  nb = snprintf(bound, sizeof bound, "\"maximum\": %d", vocab_size - 1);
    size_t mark = strlen(TOKEN_ID_MARK), n_marks = 0, len = strlen(srv_openapi_json);
    for (const char *p = srv_openapi_json; (p = strstr(p, TOKEN_ID_MARK)); p += mark) n_marks++;
    /* the bound (< 48 bytes) is at most a few bytes longer than the mark: no overflow here */
    char *out = malloc(len + n_marks * (size_t)nb + 1);
    if (!out) return NULL;
    char       *w = out;
    const char *p = srv_openapi_json, *hit;
    while ((hit = strstr(p, TOKEN_ID_MARK))) {
        memcpy(w, p, (size_t)(hit - p));
        w += hit - p;
        memcpy(w, bound, (size_t)nb);
        w += nb;
        p = hit + mark;
    }
    strcpy(w, p);
    return out;
}
