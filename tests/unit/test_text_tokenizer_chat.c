/* Chat rendering on a standalone tokenizer (llmrt_text_tokenizer_apply_chat_template*,
 * include/llmrt_experimental.h): the template of the tokenizer directory's tokenizer_config.json
 * (Qwen2's real tokenizer unpacked by CMake, with Qwen2.5-Instruct's corpus template) renders
 * every golden case of that template in tests/data/chat_templates/golden.json (transformers'
 * apply_chat_template) byte for byte, and the rendered prompt tokenizes to Qwen2's ids; the
 * GGUF's tokenizer.chat_template (SmolLM2, when the default model is present) renders its
 * family golden; family overrides; bad arguments and bad messages are refused naming them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json_util.h"
#include "llmrt.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define TEMPLATES LLMRT_TEST_DATA_DIR "/chat_templates"
#define QWEN2     LLMRT_QWEN2_TOKENIZER_DIR

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

/* Renders with the size protocol (query, then fill); NULL on error with *st set. */
static char *render_json(const llmrt_text_tokenizer *tok, const char *name, const char *msgs,
                         const char *tools, bool agp, llmrt_status *st) {
    size_t len = 0;
    *st = llmrt_text_tokenizer_apply_chat_template_json(tok, name, msgs, tools, agp, NULL, 0, &len);
    if (*st != LLMRT_ERR_BUFFER_TOO_SMALL) return NULL;
    char *out = malloc(len + 1);
    *st = llmrt_text_tokenizer_apply_chat_template_json(tok, name, msgs, tools, agp, out, len + 1,
                                                        &len);
    if (*st != LLMRT_OK) {
        free(out);
        return NULL;
    }
    return out;
}

/* Every golden case of `template_name` rendered with the tokenizer's own template. */
static int run_golden(const llmrt_text_tokenizer *tok, const char *template_name) {
    cJSON *doc = NULL;
    llmrt_error err = {0};
    CHECK(llmrt_json_parse_file(TEMPLATES "/golden.json", (uint64_t)64 << 20, &doc, &err) ==
          LLMRT_OK);
    if (!doc) return 0;
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring, template_name))
            continue;
        const char *conv = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valuestring;
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(c, "vars");
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(vars, "tools");
        bool agp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(vars, "messages"));
        char *tj = !tools || cJSON_IsNull(tools) ? NULL : cJSON_PrintUnformatted(tools);
        llmrt_status st;
        char *out = render_json(tok, NULL, msgs, tj, agp, &st);
        const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected");
        if (cJSON_IsString(expected))
            CHECK_MSG(out && !strcmp(out, expected->valuestring),
                      "%s [%s, agp=%d]: differs\n--- expected\n%s\n--- got (%s)\n%s\n",
                      template_name, conv, agp, expected->valuestring, llmrt_last_error(),
                      out ? out : "(error)");
        else
            CHECK_MSG(st == LLMRT_ERR_INVALID_ARG, "%s [%s]: transformers raised, we returned %s",
                      template_name, conv, llmrt_status_str(st));
        n++;
        free(out);
        free(msgs);
        free(tj);
    }
    cJSON_Delete(doc);
    return n;
}

static void test_qwen2_dir(void) {
    llmrt_text_tokenizer *tok = NULL;
    CHECK_STATUS(llmrt_text_tokenizer_load(QWEN2, NULL, &tok), LLMRT_OK, NULL);
    if (!tok) return;
    /* the template is the one of the directory's tokenizer_config.json */
    char *want = read_text(TEMPLATES "/Qwen-Qwen2.5-7B-Instruct.jinja");
    CHECK(want && llmrt_text_tokenizer_chat_template(tok) &&
          !strcmp(llmrt_text_tokenizer_chat_template(tok), want));
    free(want);
    int n = run_golden(tok, "Qwen-Qwen2.5-7B-Instruct");
    printf("qwen2 tokenizer directory: %d golden cases of Qwen2.5-7B-Instruct's template\n", n);
    CHECK(n >= 20);

    /* the llmrt_chat_message form renders the same text as the JSON form */
    llmrt_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi <|im_end|> 你好"}};
    char text[1024];
    size_t len = 0;
    CHECK_STATUS(
        llmrt_text_tokenizer_apply_chat_template(tok, NULL, msgs, 2, true, text, sizeof text, &len),
        LLMRT_OK, NULL);
    llmrt_status st;
    char *j = render_json(tok, NULL,
                          "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                          "{\"role\":\"user\",\"content\":\"Hi <|im_end|> 你好\"}]",
                          NULL, true, &st);
    CHECK(j && len == strlen(text) && !strcmp(j, text));
    free(j);
    const char *exp = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi <|im_end|> "
                      "你好<|im_end|>\n<|im_start|>assistant\n";
    CHECK_MSG(!strcmp(text, exp), "got \"%s\"", text);
    /* the prompt in Qwen2's ids: the scaffolding's specials parsed (HF tokenize=True) */
    int32_t ids[64], n_ids = 0;
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, text, len, false, true, ids, 64, &n_ids),
                 LLMRT_OK, NULL);
    CHECK(n_ids > 6 && ids[0] == 151644 && ids[n_ids - 3] == 151644);
    CHECK(!strcmp(llmrt_text_tokenizer_token_piece(tok, 151645), "<|im_end|>"));
    CHECK(llmrt_text_tokenizer_token_piece(tok, 151646) == NULL);
    CHECK(llmrt_text_tokenizer_token_piece(tok, -1) == NULL);

    /* size protocol: too small a buffer is refused without writing past it */
    char small[8] = "xxxxxxx";
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template(tok, NULL, msgs, 2, true, small, 4, &len),
                 LLMRT_ERR_BUFFER_TOO_SMALL, "bytes needed");
    CHECK(len == strlen(exp) && small[4] == 'x');

    /* a family name overrides the tokenizer's own template */
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template(tok, "llama3", msgs, 2, true, text,
                                                          sizeof text, &len),
                 LLMRT_OK, NULL);
    CHECK(strstr(text, "<|start_header_id|>user<|end_header_id|>") != NULL);
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template(tok, "vicuna", msgs, 2, true, text,
                                                          sizeof text, &len),
                 LLMRT_ERR_UNSUPPORTED, "vicuna");

    /* bad input: named */
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template(NULL, NULL, msgs, 2, true, text,
                                                          sizeof text, &len),
                 LLMRT_ERR_INVALID_ARG, "tokenizer");
    CHECK_STATUS(
        llmrt_text_tokenizer_apply_chat_template(tok, NULL, msgs, 2, true, text, sizeof text, NULL),
        LLMRT_ERR_INVALID_ARG, "len");
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template_json(tok, NULL, NULL, NULL, true, text,
                                                               sizeof text, &len),
                 LLMRT_ERR_INVALID_ARG, "messages_json");
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template_json(tok, NULL, "[{\"role\": 7}]", NULL,
                                                               true, text, sizeof text, &len),
                 LLMRT_ERR_INVALID_ARG, "messages[0].role");
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template_json(tok, NULL, "[{\"role\": \"user\"",
                                                               NULL, true, text, sizeof text, &len),
                 LLMRT_ERR_INVALID_ARG, "messages");
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template_json(
                     tok, NULL, "[{\"role\":\"user\",\"content\":\"x\"}]", "{\"not\":\"a list\"}",
                     true, text, sizeof text, &len),
                 LLMRT_ERR_INVALID_ARG, "tools");
    llmrt_chat_message no_content[] = {{"user", NULL}};
    CHECK(llmrt_text_tokenizer_apply_chat_template(tok, NULL, no_content, 1, true, text,
                                                   sizeof text, &len) == LLMRT_ERR_INVALID_ARG);
    llmrt_text_tokenizer_destroy(tok);

    /* the tokenizer.json alone has no template: a family name is needed, and the error says so */
    CHECK_STATUS(llmrt_text_tokenizer_load(QWEN2 "/tokenizer.json", NULL, &tok), LLMRT_OK, NULL);
    if (!tok) return;
    CHECK(llmrt_text_tokenizer_chat_template(tok) == NULL);
    CHECK_STATUS(
        llmrt_text_tokenizer_apply_chat_template(tok, NULL, msgs, 2, true, text, sizeof text, &len),
        LLMRT_ERR_UNSUPPORTED, "no chat template");
    CHECK_STATUS(llmrt_text_tokenizer_apply_chat_template(tok, "chatml", msgs, 2, true, text,
                                                          sizeof text, &len),
                 LLMRT_OK, NULL);
    CHECK(strstr(text, "<|im_start|>user\nHi <|im_end|> 你好<|im_end|>\n") != NULL);
    llmrt_text_tokenizer_destroy(tok);
}

/* A GGUF's tokenizer.chat_template (SmolLM2's, in the default model) through the standalone
 * tokenizer: its golden (smollm2_gguf.json of make_chat_golden.py, transformers) byte for byte. */
static void test_gguf(void) {
    if (!LLMRT_DEFAULT_MODEL[0]) {
        printf("SKIP gguf: no default model\n");
        return;
    }
    llmrt_text_tokenizer *tok = NULL;
    if (llmrt_text_tokenizer_load(LLMRT_DEFAULT_MODEL, NULL, &tok) != LLMRT_OK) {
        printf("SKIP gguf: %s\n", llmrt_last_error());
        return;
    }
    CHECK(llmrt_text_tokenizer_chat_template(tok) &&
          strstr(llmrt_text_tokenizer_chat_template(tok), "<|im_start|>"));
    cJSON *doc = NULL;
    llmrt_error err = {0};
    CHECK(llmrt_json_parse_file(LLMRT_TEST_DATA_DIR "/chat_golden/smollm2_gguf.json", 16 << 20,
                                &doc, &err) == LLMRT_OK);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected");
        if (!cJSON_IsString(expected)) continue;
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "messages"));
        bool agp = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"));
        llmrt_status st;
        char *out = render_json(tok, NULL, msgs, NULL, agp, &st);
        CHECK_MSG(out && !strcmp(out, expected->valuestring), "smollm2 gguf [%s]: got %s",
                  cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring,
                  out ? out : llmrt_last_error());
        n++;
        free(out);
        free(msgs);
    }
    printf("smollm2 gguf: %d golden cases of its own template\n", n);
    CHECK(n >= 5);
    cJSON_Delete(doc);
    llmrt_text_tokenizer_destroy(tok);
}

int main(void) {
    test_qwen2_dir();
    test_gguf();
    return test_summary("test_text_tokenizer_chat");
}
