/* Conversations as OpenAI/HF JSON through the public API (llmrt_chat_apply_template_json):
 * every golden case of tests/data/chat_templates/golden.json (transformers' apply_chat_template,
 * python/tools/make_template_golden.py: tools, tool calls, tool results, content-part lists, ...)
 * rendered for a model whose tokenizer_config.json carries that corpus template and the golden's
 * bos/eos tokens must come out byte for byte, or fail where transformers raised. The model is
 * the tiny llama_f32 checkpoint with a small tokenizer written to a temporary directory. Also:
 * errors naming the index and field, the family renderers' limits, the size protocol, and the
 * content-format detection (llmrt_chat_template_takes_parts) on the corpus. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json_util.h"
#include "llmrt.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define TEMPLATES LLMRT_TEST_DATA_DIR "/chat_templates"

static char tmp_dir[] = "/tmp/llmrt_chat_json_XXXXXX";

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static void write_json(const char *name, cJSON *doc) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    char *text = cJSON_PrintUnformatted(doc);
    FILE *f = fopen(path, "w");
    if (f && text) fputs(text, f);
    if (f) fclose(f);
    free(text);
}

/* The tiny model with a tokenizer holding `bos`/`eos` (NULL = none) and `chat_template`. */
static llmrt_model *load_model(const char *chat_template, const char *bos, const char *eos) {
    cJSON *tok = cJSON_Parse("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                             "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,"
                             "\"<unk>\":3},\"merges\":[\"a b\"],\"unk_token\":\"<unk>\"}}");
    cJSON *added = cJSON_AddArrayToObject(tok, "added_tokens");
    cJSON *cfg = cJSON_CreateObject();
    const char *specials[2] = {bos, eos}, *keys[2] = {"bos_token", "eos_token"};
    for (int k = 0, id = 4; k < 2; k++) {
        if (!specials[k]) continue;
        if (k == 0 || !bos || strcmp(bos, eos)) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddNumberToObject(t, "id", id++);
            cJSON_AddStringToObject(t, "content", specials[k]);
            cJSON_AddBoolToObject(t, "special", true);
            cJSON_AddItemToArray(added, t);
        }
        cJSON_AddStringToObject(cfg, keys[k], specials[k]);
    }
    if (chat_template) cJSON_AddStringToObject(cfg, "chat_template", chat_template);
    write_json("tokenizer.json", tok);
    write_json("tokenizer_config.json", cfg);
    cJSON_Delete(tok);
    cJSON_Delete(cfg);
    llmrt_model *m = NULL;
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads = 1;
    CHECK_STATUS(llmrt_model_load(tmp_dir, &p, &m), LLMRT_OK, NULL);
    return m;
}

/* Renders through the size protocol: length query, then the text. NULL on error. */
static char *render(const llmrt_model *m, const char *family, const char *msgs, const char *tools,
                    bool agp, llmrt_status *st) {
    size_t len = 0;
    *st = llmrt_chat_apply_template_json(m, family, msgs, tools, agp, NULL, 0, &len);
    if (*st != LLMRT_ERR_BUFFER_TOO_SMALL) return NULL;
    char *text = malloc(len + 1);
    *st = llmrt_chat_apply_template_json(m, family, msgs, tools, agp, text, len + 1, &len);
    if (*st != LLMRT_OK) {
        free(text);
        return NULL;
    }
    CHECK(strlen(text) == len);
    return text;
}

static const char *str_or_null(const cJSON *v) {
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every golden case of templates that need no clock (strftime_now) and no unk_token. */
static void test_golden(void) {
    cJSON *doc = NULL;
    llmrt_error err = {0};
    CHECK(llmrt_json_parse_file(TEMPLATES "/golden.json", (uint64_t)64 << 20, &doc, &err) ==
          LLMRT_OK);
    if (!doc) return;
    const cJSON *c;
    char current[256] = "";
    llmrt_model *m = NULL;
    bool skip = false;
    int n_cases = 0, n_tools = 0, n_parts = 0, n_calls = 0, n_errors = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        const char *conv = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valuestring;
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(c, "vars");
        if (strcmp(name, current)) {
            llmrt_model_destroy(m);
            m = NULL;
            snprintf(current, sizeof current, "%s", name);
            char path[512];
            snprintf(path, sizeof path, "%s/%s.jinja", TEMPLATES, name);
            char *src = read_text(path);
            CHECK_MSG(src != NULL, "cannot read %s", path);
            skip = !src || strstr(src, "strftime_now") || strstr(src, "unk_token") ||
                   strstr(src, "pad_token");
            if (!skip)
                m = load_model(src,
                               str_or_null(cJSON_GetObjectItemCaseSensitive(vars, "bos_token")),
                               str_or_null(cJSON_GetObjectItemCaseSensitive(vars, "eos_token")));
            free(src);
        }
        if (skip || !m) continue;
        bool agp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(vars, "tools");
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(vars, "messages"));
        char *tj = cJSON_IsNull(tools) || !tools ? NULL : cJSON_PrintUnformatted(tools);
        llmrt_status st;
        char *out = render(m, NULL, msgs, tj, agp, &st);
        const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected");
        if (cJSON_IsString(expected)) {
            CHECK_MSG(out && !strcmp(out, expected->valuestring),
                      "%s [%s, agp=%d]: differs\n--- expected\n%s\n--- got (%s)\n%s\n", name, conv,
                      agp, expected->valuestring, llmrt_last_error(), out ? out : "(error)");
        } else {
            CHECK_MSG(st == LLMRT_ERR_INVALID_ARG, "%s [%s]: transformers raised, we returned %s",
                      name, conv, llmrt_status_str(st));
            n_errors++;
        }
        n_cases++;
        n_tools += tj != NULL;
        n_parts += !strcmp(conv, "parts");
        n_calls += !strcmp(conv, "tool_call");
        free(out);
        free(msgs);
        free(tj);
    }
    llmrt_model_destroy(m);
    cJSON_Delete(doc);
    printf("golden through llmrt_chat_apply_template_json: %d cases (%d with tools, %d tool-call "
           "conversations, %d content-part conversations, %d errors)\n",
           n_cases, n_tools, n_calls, n_parts, n_errors);
    /* the corpus must keep exercising what this entry point exists for */
    CHECK(n_cases >= 300 && n_tools >= 40 && n_calls >= 30 && n_parts >= 8);
}

static llmrt_model *corpus_model(const char *name, const char *bos, const char *eos) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.jinja", TEMPLATES, name);
    char *src = read_text(path);
    CHECK_MSG(src != NULL, "cannot read %s", path);
    llmrt_model *m = src ? load_model(src, bos, eos) : NULL;
    free(src);
    return m;
}

static void test_errors(void) {
    llmrt_model *m = corpus_model("Qwen-Qwen2.5-7B-Instruct", NULL, "<|im_end|>");
    if (!m) return;
    const char *ok = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    size_t len;
    char buf[64];
    struct {
        const char *msgs, *tools, *needle;
    } bad[] = {
        {"[{\"role\":\"user\",", NULL, "chat messages: invalid JSON"},
        {"[] x", NULL, "trailing"},
        {"{}", NULL, "must be a JSON array"},
        {"[]", NULL, "1 to 65536 messages"},
        {"[1]", NULL, "messages[0]: must be an object"},
        {"[{\"role\":\"user\",\"content\":\"a\"},{\"content\":\"x\"}]", NULL, "messages[1].role"},
        {"[{\"role\":7,\"content\":\"x\"}]", NULL, "messages[0].role: must be a string"},
        {"[{\"role\":\"user\",\"content\":5}]", NULL, "messages[0].content"},
        {"[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{}}]", NULL,
         "messages[0].tool_calls"},
        {ok, "{\"type\":\"function\"}", "tools: must be a JSON array"},
        {ok, "[1]", "tools[0]: must be an object"},
        {ok, "[{", "chat tools: invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STATUS(llmrt_chat_apply_template_json(m, NULL, bad[i].msgs, bad[i].tools, true, buf,
                                                    sizeof buf, &len),
                     LLMRT_ERR_INVALID_ARG, bad[i].needle);
    /* nesting beyond 64 levels */
    char deep[400] = "[{\"role\":\"user\",\"content\":\"x\",\"extra\":";
    for (int k = 0; k < 70; k++)
        strcat(deep, "[");
    for (int k = 0; k < 70; k++)
        strcat(deep, "]");
    strcat(deep, "}]");
    CHECK_STATUS(llmrt_chat_apply_template_json(m, NULL, deep, NULL, true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "nested deeper than 64");
    CHECK_STATUS(llmrt_chat_apply_template_json(m, NULL, NULL, NULL, true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "messages_json");
    CHECK_STATUS(llmrt_chat_apply_template_json(NULL, NULL, ok, NULL, true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "bad arguments");
    /* size protocol: too small is reported with the size, nothing past the capacity written */
    char small[8];
    memset(small, 'Z', sizeof small);
    CHECK_STATUS(llmrt_chat_apply_template_json(m, NULL, ok, NULL, true, small, 4, &len),
                 LLMRT_ERR_BUFFER_TOO_SMALL, "bytes needed");
    CHECK(len > 4 && small[4] == 'Z');
    /* the template's own raise comes back as INVALID_ARG with its message */
    llmrt_model_destroy(m);
    m = corpus_model("google-gemma-7b-it", "<bos>", "<eos>");
    if (m)
        CHECK_STATUS(llmrt_chat_apply_template_json(m, NULL,
                                                    "[{\"role\":\"user\",\"content\":\"a\"},"
                                                    "{\"role\":\"user\",\"content\":\"b\"}]",
                                                    NULL, true, NULL, 0, &len),
                     LLMRT_ERR_INVALID_ARG, "alternate");
    llmrt_model_destroy(m);
}

/* A built-in family: role + text only (parts joined with "\n"), the same as the structured call;
 * tool fields and tools refused by name. */
static void test_family(void) {
    llmrt_model *m =
        corpus_model("HuggingFaceTB-SmolLM2-135M-Instruct", "<|im_start|>", "<|im_end|>");
    if (!m) return;
    llmrt_status st;
    char *parts = render(m, "chatml",
                         "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                         "{\"type\":\"text\",\"text\":\"two\"}]}]",
                         NULL, true, &st);
    llmrt_chat_message msg = {"user", "one\ntwo"};
    char want[256];
    size_t len = 0;
    CHECK_STATUS(llmrt_chat_apply_template(m, "chatml", &msg, 1, true, want, sizeof want, &len),
                 LLMRT_OK, NULL);
    CHECK_MSG(parts && !strcmp(parts, want), "family parts: got %s",
              parts ? parts : llmrt_last_error());
    free(parts);
    /* the JSON call and the structured call agree on the model's own template too */
    llmrt_chat_message two[] = {{"system", "Be brief."}, {"user", "Hi <|im_end|>"}};
    char *own = render(m, NULL,
                       "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Hi <|im_end|>\"}]",
                       NULL, false, &st);
    CHECK_STATUS(llmrt_chat_apply_template(m, NULL, two, 2, false, want, sizeof want, &len),
                 LLMRT_OK, NULL);
    CHECK(own && !strcmp(own, want));
    free(own);
    const char *calls =
        "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":{}}}]}]";
    CHECK_STATUS(llmrt_chat_apply_template_json(m, "chatml", calls, NULL, true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "messages[1].tool_calls");
    CHECK_STATUS(llmrt_chat_apply_template_json(m, "llama3",
                                                "[{\"role\":\"user\",\"content\":[{\"type\":"
                                                "\"image_url\"}]}]",
                                                NULL, true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "messages[0].content[0]");
    CHECK_STATUS(llmrt_chat_apply_template_json(m, "chatml",
                                                "[{\"role\":\"user\",\"content\":\"x\"}]",
                                                "[{\"type\":\"function\"}]", true, NULL, 0, &len),
                 LLMRT_ERR_INVALID_ARG, "tools");
    CHECK_STATUS(llmrt_chat_apply_template_json(m, "nope",
                                                "[{\"role\":\"user\",\"content\":\"x\"}]", NULL,
                                                true, NULL, 0, &len),
                 LLMRT_ERR_UNSUPPORTED, "nope");
    /* the family never takes parts; SmolLM2's own template prints content as a string */
    CHECK(!llmrt_chat_template_takes_parts(m, "chatml"));
    CHECK(!llmrt_chat_template_takes_parts(m, NULL));
    llmrt_model_destroy(m);
}

/* vLLM's content-format rule on the corpus: the templates that loop over a message's content. */
static void test_content_format(void) {
    struct {
        const char *name;
        bool parts;
    } cases[] = {{"Mistral-Small-3.2-24B-Instruct-2506", true},
                 {"meta-llama-Llama-3.1-8B-Instruct", false},
                 {"Qwen-Qwen2.5-7B-Instruct", false},
                 {"google-gemma-2-2b-it", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llmrt_model *m = corpus_model(cases[i].name, "<s>", "</s>");
        CHECK_MSG(m && llmrt_chat_template_takes_parts(m, NULL) == cases[i].parts,
                  "%s: takes parts", cases[i].name);
        llmrt_model_destroy(m);
    }
    /* a variable set from the content, then iterated; a for with a filter and a condition */
    const char *via_var = "{% for m in messages %}{% set c = m['content'] %}{% for p in c %}"
                          "{{ p.text }}{% endfor %}{% endfor %}";
    const char *filtered =
        "{% for m in messages %}{%- for p in m.content | selectattr('type') if p "
        "%}{{ p.text }}{% endfor %}{% endfor %}";
    const char *string = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
    const char *srcs[] = {via_var, filtered, string};
    bool want[] = {true, true, false};
    for (int i = 0; i < 3; i++) {
        llmrt_model *m = load_model(srcs[i], NULL, NULL);
        CHECK_MSG(m && llmrt_chat_template_takes_parts(m, NULL) == want[i], "template %d", i);
        llmrt_model_destroy(m);
    }
}

int main(void) {
    CHECK(mkdtemp(tmp_dir) != NULL);
    const char *tiny = LLMRT_TEST_DATA_DIR "/tiny/llama_f32";
    char from[PATH_MAX], to[PATH_MAX];
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", tiny, files[i]);
        snprintf(to, sizeof to, "%s/%s", tmp_dir, files[i]);
        CHECK(symlink(from, to) == 0);
    }
    test_golden();
    test_errors();
    test_family();
    test_content_format();
    const char *made[] = {"config.json", "model.safetensors", "tokenizer.json",
                          "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/%s", tmp_dir, made[i]);
        unlink(to);
    }
    rmdir(tmp_dir);
    return test_summary("test_chat_json");
}
