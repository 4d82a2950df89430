/* llmrt tokenize: print the token ids and pieces of a text, or of a chat rendered with the chat
 * template, with a model's tokenizer (-m) or a tokenizer on its own (--tokenizer: tokenizer.json,
 * a directory holding it, or a GGUF file's vocabulary; no weights are read). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "llmrt_experimental.h"

/* The largest --chat / --tools file read (the renderer takes JSON texts up to 64 MiB). */
#define TOKENIZE_MAX_JSON_BYTES ((size_t)64 << 20)

/* Where the ids come from: a loaded model's tokenizer or a standalone one (exactly one set). */
typedef struct tok_source {
    llmrt_model *model;
    llmrt_text_tokenizer *tok;
} tok_source;

static llmrt_status src_encode(const tok_source *s, const char *text, size_t len, bool add,
                               bool parse, int32_t *ids, int32_t cap, int32_t *n) {
    return s->model ? llmrt_tokenize(s->model, text, len, add, parse, ids, cap, n)
                    : llmrt_text_tokenizer_encode(s->tok, text, len, add, parse, ids, cap, n);
}

static const char *src_piece(const tok_source *s, int32_t id) {
    return s->model ? llmrt_token_piece(s->model, id)
                    : llmrt_text_tokenizer_token_piece(s->tok, id);
}

static llmrt_status src_render(const tok_source *s, const char *tmpl, const char *msgs,
                               const char *tools, bool agp, char *text, size_t cap, size_t *len) {
    return s->model
               ? llmrt_chat_apply_template_json(s->model, tmpl, msgs, tools, agp, text, cap, len)
               : llmrt_text_tokenizer_apply_chat_template_json(s->tok, tmpl, msgs, tools, agp, text,
                                                               cap, len);
}

/* The whole regular file at `path` as a NUL-terminated malloc'd string; NULL with a message
 * naming the option and the file on stderr. */
static char *read_json_file(const char *opt, const char *path) {
    FILE *f = cli_fopen_regular(path);
    if (!f) {
        fprintf(stderr, "llmrt tokenize: %s %s: %s\n", opt, path, llmrt_last_error());
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap - 1) {
            if (cap > TOKENIZE_MAX_JSON_BYTES) {
                fprintf(stderr, "llmrt tokenize: %s %s: larger than %zu bytes\n", opt, path,
                        TOKENIZE_MAX_JSON_BYTES);
                free(buf);
                buf = NULL;
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "llmrt tokenize: %s %s: read error: %s\n", opt, path,
                        strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (strlen(buf) != n) {
        fprintf(stderr, "llmrt tokenize: %s %s: contains a NUL byte (not JSON text)\n", opt, path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The chat of --chat (and --tools) rendered with the template into a malloc'd string. */
static char *render_chat(const tok_source *s, const char *tmpl, const char *chat_path,
                         const char *tools_path, bool agp) {
    char *msgs = read_json_file("--chat", chat_path);
    char *tools = msgs && tools_path ? read_json_file("--tools", tools_path) : NULL;
    char *text = NULL;
    if (msgs && (tools || !tools_path)) {
        size_t len = 0;
        llmrt_status st = src_render(s, tmpl, msgs, tools, agp, NULL, 0, &len);
        if (st == LLMRT_ERR_BUFFER_TOO_SMALL) {
            text = malloc(len + 1);
            st = text ? src_render(s, tmpl, msgs, tools, agp, text, len + 1, &len)
                      : LLMRT_ERR_OUT_OF_MEMORY;
        }
        if (st != LLMRT_OK) {
            fprintf(stderr, "llmrt tokenize: --chat %s: %s\n", chat_path,
                    st == LLMRT_ERR_OUT_OF_MEMORY ? "out of memory" : llmrt_last_error());
            free(text);
            text = NULL;
        }
    }
    free(msgs);
    free(tools);
    return text;
}

static int print_ids(const tok_source *s, const char *text, bool add_special, bool parse_special,
                     bool ids_only) {
    int32_t n = 0;
    size_t len = strlen(text);
    llmrt_status st = src_encode(s, text, len, add_special, parse_special, NULL, 0, &n);
    int32_t *ids = NULL;
    if (st == LLMRT_ERR_BUFFER_TOO_SMALL || st == LLMRT_OK) {
        ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
        st = ids ? src_encode(s, text, len, add_special, parse_special, ids, n, &n)
                 : LLMRT_ERR_OUT_OF_MEMORY;
    }
    if (st != LLMRT_OK) {
        fprintf(stderr, "llmrt tokenize: %s\n",
                st == LLMRT_ERR_OUT_OF_MEMORY ? "out of memory" : llmrt_last_error());
        free(ids);
        return 1;
    }
    for (int32_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? ",%d" : "%d", ids[i]);
            continue;
        }
        const char *piece = src_piece(s, ids[i]);
        printf("%8d  ", ids[i]);
        for (const unsigned char *p = (const unsigned char *)(piece ? piece : ""); *p; p++)
            printf(*p < 0x20 || *p == 0x7f ? "\\x%02x" : "%c", *p);
        printf("\n");
    }
    if (ids_only) printf("\n");
    fprintf(stderr, "%d tokens\n", n);
    free(ids);
    return 0;
}

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: llmrt tokenize [-m MODEL | --tokenizer PATH] [options] TEXT\n"
        "       llmrt tokenize [-m MODEL | --tokenizer PATH] --chat FILE [options]\n"
        "  --tokenizer PATH       a tokenizer without a model: tokenizer.json, a directory\n"
        "                         holding it (and tokenizer_config.json), or a GGUF file\n"
        "  --chat FILE            render the conversation in FILE (an OpenAI/HF JSON array of\n"
        "                         messages) with the chat template, then tokenize it as HF's\n"
        "                         apply_chat_template(tokenize=True) does (special tokens\n"
        "                         parsed, no BOS added)\n"
        "  --tools FILE           with --chat: the tools (a JSON array) passed to the template\n"
        "  --no-generation-prompt with --chat: add_generation_prompt false\n"
        "  --render               with --chat: print the rendered prompt instead of ids\n"
        "  --chat-template NAME   chatml | llama2 | llama3 | mistral instead of the own template\n"
        "  --no-add-special       no BOS/EOS from the post-processor\n"
        "  --parse-special        recognise special-token strings in TEXT\n"
        "  --ids                  print only the ids\n");
}

int cli_tokenize(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    bool add_special = true, parse_special = false, ids_only = false, agp = true;
    bool render_only = false;
    const char *tok_path = NULL, *chat_path = NULL, *tools_path = NULL;
    enum {
        OPT_NO_SPECIAL = 2000,
        OPT_PARSE_SPECIAL,
        OPT_IDS,
        OPT_TOKENIZER,
        OPT_CHAT,
        OPT_TOOLS,
        OPT_NO_GEN,
        OPT_RENDER
    };
    static const struct option own[] = {
        {"no-add-special", no_argument, 0, OPT_NO_SPECIAL},
        {"parse-special", no_argument, 0, OPT_PARSE_SPECIAL},
        {"ids", no_argument, 0, OPT_IDS},
        {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"chat", required_argument, 0, OPT_CHAT},
        {"tools", required_argument, 0, OPT_TOOLS},
        {"no-generation-prompt", no_argument, 0, OPT_NO_GEN},
        {"render", no_argument, 0, OPT_RENDER},
        {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int o;
    optind = 1;
    cli_device = LLMRT_DEVICE_CPU;            /* it runs no forward: the CPU unless --device asks */
    const char *default_model = c.model_path; /* -m / --model change it */
    while ((o = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (o == OPT_NO_SPECIAL)
            add_special = false;
        else if (o == OPT_PARSE_SPECIAL)
            parse_special = true;
        else if (o == OPT_IDS)
            ids_only = true;
        else if (o == OPT_TOKENIZER)
            tok_path = optarg;
        else if (o == OPT_CHAT)
            chat_path = optarg;
        else if (o == OPT_TOOLS)
            tools_path = optarg;
        else if (o == OPT_NO_GEN)
            agp = false;
        else if (o == OPT_RENDER)
            render_only = true;
        else {
            usage(o == 'h' ? stdout : stderr);
            return o == 'h' ? 0 : 2;
        }
    }
    if (tok_path && c.model_path != default_model) {
        fprintf(stderr, "llmrt tokenize: give -m MODEL or --tokenizer PATH, not both\n");
        return 2;
    }
    if (chat_path ? optind != argc : optind != argc - 1) {
        fprintf(stderr, chat_path
                            ? "llmrt tokenize: --chat FILE takes no TEXT argument\n"
                            : "llmrt tokenize: give exactly one TEXT argument (or --chat FILE)\n");
        return 2;
    }
    if (!chat_path && (tools_path || !agp || render_only || c.chat_template)) {
        fprintf(stderr, "llmrt tokenize: --%s needs --chat FILE\n",
                tools_path    ? "tools"
                : !agp        ? "no-generation-prompt"
                : render_only ? "render"
                              : "chat-template");
        return 2;
    }
    if (chat_path && (parse_special || !add_special)) {
        fprintf(stderr,
                "llmrt tokenize: --%s applies to TEXT; a --chat prompt is tokenized with "
                "special tokens parsed and no BOS added (the template writes its own)\n",
                parse_special ? "parse-special" : "no-add-special");
        return 2;
    }
    tok_source s = {0};
    if (tok_path) {
        if (llmrt_text_tokenizer_load(tok_path, NULL, &s.tok) != LLMRT_OK) {
            fprintf(stderr, "llmrt tokenize: --tokenizer %s: %s\n", tok_path, llmrt_last_error());
            return 1;
        }
    } else {
        s.model = cli_load_model(c.model_path, 1, c.load_format);
        if (!s.model) return 1;
    }
    int rc = 0;
    if (chat_path) {
        char *prompt = render_chat(&s, c.chat_template, chat_path, tools_path, agp);
        if (!prompt)
            rc = 1;
        else if (render_only)
            fputs(prompt, stdout);
        else
            rc = print_ids(&s, prompt, false, true, ids_only);
        free(prompt);
    } else {
        rc = print_ids(&s, argv[optind], add_special, parse_special, ids_only);
    }
    llmrt_text_tokenizer_destroy(s.tok);
    llmrt_model_destroy(s.model);
    return rc;
}
