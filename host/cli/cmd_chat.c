/* llmrt chat: interactive multi-turn chat with history. Reads one user message per line from
 * stdin (a terminal or a pipe); "/reset" clears the history, "/exit" or end of input quits.
 * When the history no longer fits the context, the oldest turns are dropped (the system
 * message is kept) with a notice on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"

typedef struct chat_state {
    llmrt_chat_message *msgs;
    int32_t             n, cap;
    char               *reply;
    size_t              reply_len, reply_cap;
} chat_state;

static void on_text(const char *text, size_t len, void *data) {
    chat_state *st = data;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (st->reply_len + len + 1 > st->reply_cap) {
        size_t cap = st->reply_cap ? st->reply_cap * 2 : 256;
        while (cap < st->reply_len + len + 1) cap *= 2;
        char *p = realloc(st->reply, cap);
        if (!p) return;
        st->reply     = p;
        st->reply_cap = cap;
    }
    memcpy(st->reply + st->reply_len, text, len);
    st->reply_len += len;
    st->reply[st->reply_len] = 0;
}

static int push_msg(chat_state *st, const char *role, const char *content) {
    if (st->n == st->cap) {
        int32_t             cap = st->cap ? st->cap * 2 : 16;
        llmrt_chat_message *m   = realloc(st->msgs, (size_t)cap * sizeof *m);
        if (!m) return -1;
        st->msgs = m;
        st->cap  = cap;
    }
    st->msgs[st->n++] = (llmrt_chat_message){role, strdup(content)};
    return 0;
}

/* Tokens the rendered history takes (approximate: specials parsed in the whole text). */
static int32_t history_tokens(llmrt_model *model, const char *tmpl, const chat_state *st) {
    size_t len = 0;
    llmrt_chat_apply_template(model, tmpl, st->msgs, st->n, true, NULL, 0, &len);
    char *text = malloc(len + 1);
    if (!text || llmrt_chat_apply_template(model, tmpl, st->msgs, st->n, true, text, len + 1, &len)) {
        free(text);
        return -1;
    }
    int32_t n = 0;
    llmrt_tokenize(model, text, len, false, true, NULL, 0, &n);
    free(text);
    return n;
}

int cli_chat(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.lora_modules_ok  = true;
    const char *system = NULL;
    enum { OPT_SYSTEM = 2000 };
    static const struct option own[] = {{"system", required_argument, 0, OPT_SYSTEM},
                                        {"help", no_argument, 0, 'h'}};
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:n:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (o == OPT_SYSTEM) system = optarg;
        else {
            FILE *f = o == 'h' ? stdout : stderr;
            fprintf(f, "usage: llmrt chat [options]   (one message per line on stdin; /reset, /exit)\n"
                       "      --system TEXT        system message\n");
            cli_common_usage(f);
            return o == 'h' ? 0 : 2;
        }
    }
    llmrt_model *model = cli_load_model(c.model_path, c.threads, c.load_format);
    if (!model) return 1;
    llmrt_engine *engine = cli_engine_create(&c, model, "llmrt chat");
    if (!engine) {
        llmrt_model_destroy(model);
        return 1;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(model, &info);
    llmrt_sampling_params sp = cli_common_sampling(&c, model);
    int32_t limit = info.max_context < c.engine.kv_tokens ? info.max_context : (int32_t)c.engine.kv_tokens;
    limit -= sp.max_tokens < limit / 2 ? sp.max_tokens : limit / 2; /* room for the reply */

    chat_state st  = {0};
    int32_t    n_system = 0;
    if (system) {
        push_msg(&st, "system", system);
        n_system = 1;
    }
    bool    tty  = isatty(STDIN_FILENO);
    char   *line = NULL;
    size_t  cap  = 0;
    ssize_t got;
    int     rc = 0;
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        if ((got = getline(&line, &cap, stdin)) < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            for (int32_t i = n_system; i < st.n; i++) free((char *)st.msgs[i].content);
            st.n = n_system;
            fprintf(stderr, "[history cleared]\n");
            continue;
        }
        push_msg(&st, "user", line);
        int32_t used;
        while ((used = history_tokens(model, c.chat_template, &st)) > limit && st.n - n_system > 1) {
            /* drop the oldest user turn and its answer */
            int32_t drop = st.n - n_system >= 3 ? 2 : 1;
            for (int32_t i = 0; i < drop; i++) free((char *)st.msgs[n_system + i].content);
            memmove(st.msgs + n_system, st.msgs + n_system + drop,
                    (size_t)(st.n - n_system - drop) * sizeof *st.msgs);
            st.n -= drop;
            fprintf(stderr, "[history too long for the context (%d tokens > %d): dropped the oldest "
                            "turn]\n", used, limit);
        }
        llmrt_prompt p = {.struct_size = sizeof p, .messages = st.msgs, .n_messages = st.n,
                          .chat_template = c.chat_template};
        cli_common_prompt_lora(&c, &p);
        st.reply_len = 0;
        if (st.reply) st.reply[0] = 0;
        llmrt_generate_result res = {.struct_size = sizeof res};
        if (llmrt_generate(engine, &p, &sp, on_text, &st, &res) != LLMRT_OK) {
            fprintf(stderr, "\nllmrt chat: %s\n", llmrt_last_error());
            st.n--; /* forget the failed turn */
            free((char *)st.msgs[st.n].content);
            rc = 1;
            continue;
        }
        printf("\n");
        fflush(stdout);
        if (tty)
            fprintf(stderr, "[%d tokens, %.1f tok/s, TTFT %.3f s]\n", res.n_generated,
                    res.total_s > res.ttft_s && res.n_generated > 1
                        ? (res.n_generated - 1) / (res.total_s - res.ttft_s) : 0.0, res.ttft_s);
        push_msg(&st, "assistant", st.reply ? st.reply : "");
    }
    for (int32_t i = 0; i < st.n; i++) free((char *)st.msgs[i].content);
    free(st.msgs);
    free(st.reply);
    free(line);
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model);
    return rc;
}
