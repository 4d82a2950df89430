/* llmrt generate: text (or chat messages, or token ids) in, streamed text out, through the
 * engine. With -f, every line of the file is a prompt and all are served concurrently. Speed
 * (prompt tokens/s, generation tokens/s, TTFT) goes to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_options.h"

typedef struct gen_req {
    char   *prompt;
    char   *text; /* accumulated output (multi-prompt mode) */
    size_t  len, cap;
    uint64_t id;
    llmrt_finish_reason finish;
    int32_t n_prompt, n_gen;
    double  t_submit, t_first, t_end;
} gen_req;

static const char *finish_name(llmrt_finish_reason f) {
    static const char *names[] = {"none", "stop", "length", "abort", "error"};
    return f <= LLMRT_FINISH_ERROR ? names[f] : "?";
}

static void usage(FILE *f) {
    fprintf(f, "usage: llmrt generate [options] (-p TEXT | -f FILE | --tokens IDS)\n"
               "  -p, --prompt TEXT        the prompt\n"
               "  -f, --file FILE          one prompt per line, served concurrently\n"
               "      --tokens IDS         prompt as comma-separated token ids\n"
               "      --chat               apply the chat template (prompt = user message)\n"
               "      --system TEXT        system message (with --chat)\n");
    cli_common_usage(f);
}

static int read_lines(const char *path, gen_req **out, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "llmrt generate: cannot open %s\n", path);
        return -1;
    }
    char   *line = NULL;
    size_t  cap  = 0;
    ssize_t got;
    int     cnt = 0, room = 0;
    gen_req *reqs = NULL;
    while ((got = getline(&line, &cap, f)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (cnt == room) {
            room          = room ? room * 2 : 16;
            gen_req *next = realloc(reqs, (size_t)room * sizeof *reqs);
            if (!next) break;
            reqs = next;
        }
        memset(&reqs[cnt], 0, sizeof reqs[cnt]);
        reqs[cnt++].prompt = strdup(line);
    }
    free(line);
    fclose(f);
    *out = reqs;
    *n   = cnt;
    return 0;
}

static void append(gen_req *r, const char *s, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        while (cap < r->len + n + 1) cap *= 2;
        char *p = realloc(r->text, cap);
        if (!p) return;
        r->text = p;
        r->cap  = cap;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
}

int cli_generate(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.lora_modules_ok  = true;
    const char *prompt = NULL, *file = NULL, *ids_text = NULL, *system = NULL;
    bool        chat   = false;
    enum { OPT_TOKENS = 2000, OPT_CHAT, OPT_SYSTEM };
    static const struct option own[] = {
        {"prompt", required_argument, 0, 'p'}, {"file", required_argument, 0, 'f'},
        {"tokens", required_argument, 0, OPT_TOKENS}, {"chat", no_argument, 0, OPT_CHAT},
        {"system", required_argument, 0, OPT_SYSTEM}, {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:n:p:f:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (o) {
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case OPT_TOKENS: ids_text = optarg; break;
        case OPT_CHAT: chat = true; break;
        case OPT_SYSTEM: system = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!!prompt + !!file + !!ids_text != 1) {
        fprintf(stderr, "llmrt generate: give exactly one of -p, -f or --tokens\n");
        return 2;
    }
    gen_req *reqs = NULL;
    int      n    = 0;
    int32_t *ids = NULL, n_ids = 0;
    if (file) {
        if (read_lines(file, &reqs, &n) < 0) return 1;
        if (n == 0) {
            fprintf(stderr, "llmrt generate: %s has no prompts\n", file);
            return 2;
        }
    } else {
        reqs = calloc(1, sizeof *reqs);
        n    = 1;
        if (prompt) reqs[0].prompt = strdup(prompt);
        else if ((n_ids = cli_arg_int_list("--tokens", ids_text, 0, INT32_MAX, CLI_MAX_PROMPT_IDS,
                                           &ids)) <= 0) {
            free(reqs);
            return 2;
        }
    }
    llmrt_model *model = cli_load_model(c.model_path, c.threads, c.load_format);
    int          rc    = 1;
    llmrt_engine *engine = NULL;
    if (!model) goto done;
    if (!(engine = cli_engine_create(&c, model, "llmrt generate"))) goto done;
    llmrt_sampling_params sp = cli_common_sampling(&c, model);
    double t_start = cli_now();
    for (int i = 0; i < n; i++) {
        llmrt_chat_message msgs[2];
        int32_t            n_msgs = 0;
        llmrt_prompt       p      = {.struct_size = sizeof p, .chat_template = c.chat_template};
        if (ids) {
            p.tokens   = ids;
            p.n_tokens = n_ids;
        } else if (chat) {
            if (system) msgs[n_msgs++] = (llmrt_chat_message){"system", system};
            msgs[n_msgs++] = (llmrt_chat_message){"user", reqs[i].prompt};
            p.messages     = msgs;
            p.n_messages   = n_msgs;
        } else {
            p.text     = reqs[i].prompt;
            p.text_len = strlen(reqs[i].prompt);
        }
        p.user_data = &reqs[i];
        cli_common_prompt_lora(&c, &p);
        if (llmrt_engine_submit(engine, &p, &sp, &reqs[i].id) != LLMRT_OK) {
            fprintf(stderr, "llmrt generate: prompt %d: %s\n", i + 1, llmrt_last_error());
            goto done;
        }
    }
    int remaining = n;
    while (remaining > 0) {
        const llmrt_output *outs;
        int32_t             n_out;
        if (llmrt_engine_step(engine, &outs, &n_out) != LLMRT_OK) {
            fprintf(stderr, "llmrt generate: %s\n", llmrt_last_error());
            goto done;
        }
        for (int32_t k = 0; k < n_out; k++) {
            const llmrt_output *out = &outs[k];
            gen_req            *r   = out->user_data;
            if (n == 1) {
                fwrite(out->text, 1, out->text_len, stdout);
                fflush(stdout);
            } else {
                append(r, out->text, out->text_len);
            }
            r->n_prompt = out->n_prompt_tokens;
            r->n_gen    = out->n_generated;
            r->t_submit = out->t_submit;
            r->t_first  = out->t_first_token;
            if (out->finish != LLMRT_FINISH_NONE) {
                r->finish = out->finish;
                r->t_end  = out->t_now;
                remaining--;
                if (out->finish == LLMRT_FINISH_ERROR)
                    fprintf(stderr, "llmrt generate: request %llu failed: %s\n",
                            (unsigned long long)out->request_id, out->error_message);
            }
        }
    }
    double wall = cli_now() - t_start;
    if (n == 1) {
        gen_req *r    = &reqs[0];
        double   ttft = r->t_first > 0 ? r->t_first - r->t_submit : 0;
        double   gen  = r->t_end - r->t_first;
        printf("\n");
        fprintf(stderr, "[%s] prompt %d tokens, %.1f tok/s (TTFT %.3f s); generation %d tokens, "
                        "%.1f tok/s\n", finish_name(r->finish), r->n_prompt,
                ttft > 0 ? r->n_prompt / ttft : 0.0, ttft, r->n_gen,
                r->n_gen > 1 && gen > 0 ? (r->n_gen - 1) / gen : 0.0);
    } else {
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
            printf("### %d [%s] %s\n%s\n\n", i + 1, finish_name(reqs[i].finish), reqs[i].prompt,
                   reqs[i].text ? reqs[i].text : "");
            total += reqs[i].n_gen;
        }
        fprintf(stderr, "%d requests, %lld tokens generated in %.2f s: %.1f tok/s aggregate\n", n,
                (long long)total, wall, total / wall);
    }
    rc = 0;
done:
    llmrt_engine_destroy(engine);
    llmrt_model_destroy(model);
    for (int i = 0; i < n; i++) {
        free(reqs[i].prompt);
        free(reqs[i].text);
    }
    free(reqs);
    free(ids);
    return rc;
}
