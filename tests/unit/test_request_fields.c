/* The one request-parameter layer (host/cli/request_fields.c, issue 18 classes 3 and 4): its
 * table agrees with what `llmrt serve` documents (host/server/openapi.json), its readers refuse
 * every wrong type and out-of-range value naming the field before converting, and the server's
 * parser (host/server/server_request.c) refuses the same values through it. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_args.h"
#include "cli/request_fields.h"
#include "server/server_request.h"
#include "test_util.h"

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

/* Every numeric table field that a request schema of openapi.json has: the same bounds (n is
 * capped lower by the server: SRV_MAX_N). */
static void test_table_matches_openapi(void) {
    cJSON *doc = read_json(LLMRT_SOURCE_DIR "/host/server/openapi.json");
    CHECK(doc != NULL);
    const cJSON *schemas = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "components"), "schemas");
    int compared = 0;
    for (const char *const *name = (const char *const[]){"ChatRequest", "CompletionRequest", NULL};
         *name; name++) {
        const cJSON *props = cJSON_GetObjectItem(cJSON_GetObjectItem(schemas, *name), "properties");
        CHECK(props != NULL);
        for (int id = 0; id < REQ_N_FIELDS; id++) {
            const req_field *f = &req_fields[id];
            const cJSON *p = cJSON_GetObjectItem(props, f->name);
            if (!p || f->kind == REQ_BOOL) continue;
            const cJSON *lo = cJSON_GetObjectItem(p, f->lo_open ? "exclusiveMinimum" : "minimum");
            const cJSON *hi = cJSON_GetObjectItem(p, "maximum");
            if (!lo || !hi) continue; /* chat's "logprobs" is a boolean there */
            CHECK_MSG(lo->valuedouble == f->lo, "%s %s: openapi %g, table %g", *name, f->name,
                      lo->valuedouble, f->lo);
            double want_hi = id == REQ_N ? SRV_MAX_N : f->hi;
            CHECK_MSG(hi->valuedouble == want_hi, "%s %s: openapi %g, want %g", *name, f->name,
                      hi->valuedouble, want_hi);
            compared++;
        }
    }
    CHECK(compared >= 2 * 11);
    cJSON_Delete(doc);
}

static int read_one(req_id id, const char *json, req_values *v, char *msg, size_t n) {
    cJSON *x = cJSON_Parse(json);
    int rc = req_read_json(id, NULL, x, v, msg, n);
    cJSON_Delete(x);
    return rc;
}

static void test_readers(void) {
    char msg[512];
    req_values v;
    /* wrong types, out of range, non-integral, overflowing: refused naming the field, nothing
     * stored (each of these converted with undefined behaviour or was misread before) */
    static const struct {
        req_id id;
        const char *json, *needle;
    } bad[] = {
        {REQ_MAX_TOKENS, "1e300", "\"max_tokens\" must be an integer"},
        {REQ_MAX_TOKENS, "-1e300", "\"max_tokens\" must be an integer"},
        {REQ_MAX_TOKENS, "1.5", "\"max_tokens\" must be an integer"},
        {REQ_MAX_TOKENS, "\"12\"", "\"max_tokens\" must be a number"},
        {REQ_SEED, "-5", "\"seed\" must be an integer in [0, 9007199254740991]"},
        {REQ_SEED, "9007199254740992", "\"seed\""},
        {REQ_TOP_K, "-2", "\"top_k\""},
        {REQ_TOP_P, "0", "\"top_p\" must be a finite number in (0, 1]"},
        {REQ_TEMPERATURE, "1e39", "\"temperature\""}, /* past FLT_MAX: the float conversion */
        {REQ_IGNORE_EOS, "\"yes\"", "\"ignore_eos\" must be true or false"},
        {REQ_IGNORE_EOS, "1", "\"ignore_eos\" must be true or false"},
        {REQ_N, "true", "\"n\" must be a number"},
        {REQ_LOGPROBS, "[1]", "\"logprobs\" must be a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&v, 0, sizeof v);
        msg[0] = 0;
        CHECK_MSG(read_one(bad[i].id, bad[i].json, &v, msg, sizeof msg) < 0 && !v.has[bad[i].id] &&
                      strstr(msg, bad[i].needle),
                  "%s = %s: \"%s\"", req_fields[bad[i].id].name, bad[i].json, msg);
    }
    /* null and missing are "not given" */
    memset(&v, 0, sizeof v);
    CHECK(read_one(REQ_SEED, "null", &v, msg, sizeof msg) == 0 && !v.has[REQ_SEED]);
    CHECK(req_read_json(REQ_SEED, NULL, NULL, &v, msg, sizeof msg) == 0 && !v.has[REQ_SEED]);
    /* good values land in the sampling params; a tiny top_p is raised to 1e-9 */
    CHECK(read_one(REQ_SEED, "9007199254740991", &v, msg, sizeof msg) == 0);
    CHECK(read_one(REQ_TOP_P, "5e-324", &v, msg, sizeof msg) == 0);
    CHECK(read_one(REQ_IGNORE_EOS, "false", &v, msg, sizeof msg) == 0);
    CHECK(read_one(REQ_MAX_TOKENS, "7", &v, msg, sizeof msg) == 0);
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.ignore_eos = true;
    req_apply(&v, &sp);
    CHECK(sp.has_seed && sp.seed == 9007199254740991ull && sp.top_p == 1e-9f && !sp.ignore_eos &&
          sp.max_tokens == 7);
    /* the unknown-field policy */
    cJSON *obj = cJSON_Parse("{\"max_tokens\": 3, \"prompt\": \"x\", \"max_token\": 1}");
    const char *const extra[] = {"prompt", NULL};
    char field[64];
    CHECK(req_check_fields(obj, true, extra, field, sizeof field, msg, sizeof msg) < 0 &&
          !strcmp(field, "max_token") && strstr(msg, "\"max_token\" is not a known field"));
    cJSON_DeleteItemFromObject(obj, "max_token");
    CHECK(req_check_fields(obj, true, extra, field, sizeof field, msg, sizeof msg) == 0);
    CHECK(req_check_fields(obj, false, extra, field, sizeof field, msg, sizeof msg) < 0 &&
          !strcmp(field, "max_tokens"));
    cJSON_Delete(obj);
}

/* The server refuses through the same table: the same values, the field as `param`. */
static void test_server_uses_the_table(void) {
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"prompt\": \"x\", \"max_tokens\": 1e300}", "max_tokens"},
        {"{\"prompt\": \"x\", \"seed\": -5}", "seed"},
        {"{\"prompt\": \"x\", \"temperature\": \"0.5\"}", "temperature"},
        {"{\"prompt\": \"x\", \"ignore_eos\": \"yes\"}", "ignore_eos"},
        {"{\"prompt\": \"x\", \"top_p\": 0}", "top_p"},
        {"{\"prompt\": \"x\", \"n\": 17}", "n"},
        {"{\"prompt\": \"x\", \"max_token\": 5}", "max_token"},
        {"{\"prompt\": \"x\", \"logprobs\": 21}", "logprobs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_request r;
        char param[64], msg[512];
        int rc = srv_request_parse(bad[i].body, strlen(bad[i].body), SRV_COMPLETION, &r, param,
                                   sizeof param, msg, sizeof msg);
        CHECK_MSG(rc < 0 && !strcmp(param, bad[i].param), "%s: rc %d param \"%s\" (%s)",
                  bad[i].body, rc, param, msg);
        if (rc == 0) srv_request_free(&r);
    }
    const char *good = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"seed\": 3, "
                       "\"max_completion_tokens\": 4, \"n\": 2, \"ignore_eos\": true, "
                       "\"logprobs\": true, \"top_logprobs\": 2}";
    srv_request r;
    char param[64], msg[512];
    CHECK(srv_request_parse(good, strlen(good), SRV_CHAT, &r, param, sizeof param, msg,
                            sizeof msg) == 0);
    llmrt_sampling_params base = llmrt_sampling_default_params();
    llmrt_sampling_params sp = srv_request_sampling(&r, &base, 1);
    CHECK(r.n == 2 && sp.n == base.n && sp.has_seed && sp.seed == 4 && sp.max_tokens == 4 &&
          sp.ignore_eos && sp.n_logprobs == 2);
    srv_request_free(&r);
}

int main(void) {
    test_table_matches_openapi();
    test_readers();
    test_server_uses_the_table();
    return test_summary("test_request_fields");
}
