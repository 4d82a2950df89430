/* The chat body of `llmrt serve` as the template will see it (host/server/server_request.c):
 * messages with content-part lists, tool calls and tool results, and tools, parsed into
 * srv_request.messages_json (parts kept, tool-call arguments as objects, "developer" ->
 * "system"), messages_flat_json (parts joined with "\n") and tools_json; every bad field a 400
 * naming it. The end-to-end rendering is tests/server/test_server_tools.py. */
#include <cjson/cJSON.h>
#include <string.h>

#include "server/server_request.h"
#include "test_util.h"

static int parse(const char *body, srv_kind kind, srv_request *r, char *param, char *msg) {
    return srv_request_parse(body, strlen(body), kind, r, param, 64, msg, 512);
}

static void test_messages_for_the_template(void) {
    const char *body =
        "{\"messages\": [{\"role\": \"developer\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"one\"},"
        " {\"type\": \"text\", \"text\": \"two\"}], \"name\": \"ann\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        " \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
        "\"{\\\"a\\\": [1, 2]}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"3\"}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\"}}}], \"tool_choice\": \"auto\"}";
    srv_request r;
    char param[64], msg[512];
    CHECK_MSG(parse(body, SRV_CHAT, &r, param, msg) == 0, "%s: %s", param, msg);
    cJSON *m = cJSON_Parse(r.messages_json), *flat = cJSON_Parse(r.messages_flat_json);
    cJSON *tools = cJSON_Parse(r.tools_json);
    CHECK(cJSON_GetArraySize(m) == 4 && cJSON_GetArraySize(flat) == 4 &&
          cJSON_GetArraySize(tools) == 1);
    CHECK(r.has_content_parts && r.n_messages == 4);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "system"));
    const cJSON *parts = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content");
    CHECK(cJSON_IsArray(parts) && cJSON_GetArraySize(parts) == 2);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(flat, 1), "content")->valuestring,
                  "one\ntwo"));
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "name")->valuestring, "ann"));
    const cJSON *asst = cJSON_GetArrayItem(m, 2);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(asst, "content")));
    const cJSON *fn = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "tool_calls"), 0), "function");
    const cJSON *args = cJSON_GetObjectItem(fn, "arguments");
    CHECK(cJSON_IsObject(args) && cJSON_GetArraySize(cJSON_GetObjectItem(args, "a")) == 2);
    CHECK(
        !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_call_id")->valuestring, "c1"));
    CHECK(!strcmp(r.contents[1], "one\ntwo") && !strcmp(r.contents[2], ""));
    cJSON_Delete(m), cJSON_Delete(flat), cJSON_Delete(tools);
    srv_request_free(&r);
    /* /tokenize takes tools with messages */
    const char *tok = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": "
                      "[{\"type\": \"function\", \"function\": {\"name\": \"g\"}}]}";
    CHECK(parse(tok, SRV_TOKENIZE, &r, param, msg) == 0 && r.tools_json && !r.has_content_parts);
    srv_request_free(&r);
}

static void test_bad_fields(void) {
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": "
         "\"required\"}",
         "tool_choice"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": "
         "\"function\", \"function\": {\"name\": \"\"}}]}",
         "tools[0].function.name"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 3}", "tools"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"type\": "
         "\"function\", \"function\": {\"name\": \"f\", \"arguments\": \"[]\"}}]}]}",
         "messages[0].tool_calls[0].function.arguments"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": null}]}",
         "messages[0].tool_calls"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"3\"}]}", "messages[0].tool_call_id"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_call_id\": null}]}",
         "messages[0].tool_call_id"},
        {"{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"audio\": 1}]}",
         "messages[0].audio"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
         "messages[0].content[0].type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_request r;
        char param[64], msg[512];
        int rc = parse(bad[i].body, SRV_CHAT, &r, param, msg);
        CHECK_MSG(rc < 0 && !strcmp(param, bad[i].param), "%s: rc %d param \"%s\" (%s)",
                  bad[i].body, rc, param, msg);
        if (rc == 0) srv_request_free(&r);
    }
    /* tools on a completion are unknown there */
    srv_request r;
    char param[64], msg[512];
    CHECK(parse("{\"prompt\": \"x\", \"tools\": []}", SRV_COMPLETION, &r, param, msg) < 0 &&
          !strcmp(param, "tools"));
}

int main(void) {
    test_messages_for_the_template();
    test_bad_fields();
    return test_summary("test_server_chat_request");
}
