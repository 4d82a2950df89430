/* llmrt serve --log-text: the messages of a chat request as the request log writes them
 * (host/server/server_log.c): roles and content text as before, plus an assistant's tool_calls
 * (ids, names, arguments) and a tool message's tool_call_id and name; under --log-redact every
 * one of those strings is redacted (no e-mail, phone or ID number of the arguments reaches the
 * log), and a participant's "name" is never logged. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/redact.h"
#include "server/server_log.h"
#include "server/server_request.h"
#include "test_util.h"

static const char BODY[] =
    "{\"messages\": [{\"role\": \"user\", \"name\": \"jane_doe\", \"content\": \"Mail "
    "jane.doe@example.com please\"},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\","
    " \"type\": \"function\", \"function\": {\"name\": \"send_mail\", \"arguments\": "
    "\"{\\\"to\\\": \\\"jane.doe@example.com\\\", \\\"phone\\\": \\\"+44 20 7946 0958\\\", "
    "\\\"ids\\\": [\\\"123-45-6789\\\", 7], \\\"urgent\\\": true, \\\"bob@example.org\\\": "
    "1}\"}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": \"send_mail\", \"content\": "
    "\"sent to jane.doe@example.com\"}]}";

static const cJSON *at(const cJSON *arr, int i, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, i), key);
}

static void test_log_messages(bool redacted) {
    srv_request r;
    char param[64], msg[512], err[256];
    CHECK_MSG(srv_request_parse(BODY, strlen(BODY), SRV_CHAT, &r, param, sizeof param, msg,
                                sizeof msg) == 0,
              "%s: %s", param, msg);
    srv_redactor *red = redacted ? srv_redactor_create(err, sizeof err) : NULL;
    CHECK_MSG(!redacted || red, "%s", err);
    cJSON *m = srv_log_messages(&r, red);
    CHECK(cJSON_GetArraySize(m) == 3);
    char *line = cJSON_PrintUnformatted(m);
    CHECK(line != NULL);
    if (!line) return;
    /* the tool call as the request gave it: id, name, the arguments as an object */
    const cJSON *call = cJSON_GetArrayItem(at(m, 1, "tool_calls"), 0);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    CHECK(!strcmp(at(m, 1, "role")->valuestring, "assistant"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(call, "id")->valuestring, "call_1"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring, "send_mail"));
    CHECK(cJSON_IsObject(args));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "urgent")));
    CHECK(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(args, "ids"), 1)->valueint == 7);
    /* the tool result: its call id and function name */
    CHECK(!strcmp(at(m, 2, "tool_call_id")->valuestring, "call_1"));
    CHECK(!strcmp(at(m, 2, "name")->valuestring, "send_mail"));
    /* a participant's name is not logged */
    CHECK(at(m, 0, "name") == NULL && strstr(line, "jane_doe") == NULL);
    const char *to = cJSON_GetObjectItemCaseSensitive(args, "to")->valuestring;
    const char *phone = cJSON_GetObjectItemCaseSensitive(args, "phone")->valuestring;
    const char *id0 =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(args, "ids"), 0)->valuestring;
    if (redacted) {
        static const char *const pii[] = {"jane.doe", "example.com", "7946",
                                          "0958",     "123-45-6789", "bob@"};
        for (size_t k = 0; k < sizeof pii / sizeof pii[0]; k++)
            CHECK_MSG(strstr(line, pii[k]) == NULL, "\"%s\" reached the log: %s", pii[k], line);
        CHECK(!strcmp(to, "[EMAIL]") && !strcmp(phone, "[PHONE]") && !strcmp(id0, "[ID]"));
        CHECK(!strcmp(at(m, 2, "content")->valuestring, "sent to [EMAIL]"));
        CHECK(cJSON_GetObjectItemCaseSensitive(args, "[EMAIL]") != NULL); /* a key, redacted */
        CHECK(!strcmp(at(m, 0, "content")->valuestring, "Mail [EMAIL] please"));
    } else {
        CHECK(!strcmp(to, "jane.doe@example.com") && !strcmp(phone, "+44 20 7946 0958"));
        CHECK(!strcmp(id0, "123-45-6789"));
        CHECK(cJSON_GetObjectItemCaseSensitive(args, "bob@example.org") != NULL);
        CHECK(!strcmp(at(m, 2, "content")->valuestring, "sent to jane.doe@example.com"));
    }
    printf("%s: %s\n", redacted ? "redacted" : "plain", line);
    free(line);
    cJSON_Delete(m);
    srv_redactor_destroy(red);
    srv_request_free(&r);
}

int main(void) {
    test_log_messages(false);
    test_log_messages(true);
    return test_summary("test_server_log");
}
