/* llmrt tokenize: print the token ids and pieces of a text with the model's tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"

int cli_tokenize(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    bool add_special = true, parse_special = false, ids_only = false;
    enum { OPT_NO_SPECIAL = 2000, OPT_PARSE_SPECIAL, OPT_IDS };
    static const struct option own[] = {
        {"no-add-special", no_argument, 0, OPT_NO_SPECIAL},
        {"parse-special", no_argument, 0, OPT_PARSE_SPECIAL},
        {"ids", no_argument, 0, OPT_IDS},
        {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind     = 1;
    cli_device = LLMRT_DEVICE_CPU; /* it runs no forward: the CPU unless --device asks */
    while ((o = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (o == OPT_NO_SPECIAL) add_special = false;
        else if (o == OPT_PARSE_SPECIAL) parse_special = true;
        else if (o == OPT_IDS) ids_only = true;
        else {
            fprintf(o == 'h' ? stdout : stderr,
                    "usage: llmrt tokenize [-m MODEL] [--no-add-special] [--parse-special] [--ids] "
                    "TEXT\n  --no-add-special  no BOS/EOS from the post-processor\n"
                    "  --parse-special   recognise special-token strings in TEXT\n"
                    "  --ids             print only the ids\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "llmrt tokenize: give exactly one TEXT argument\n");
        return 2;
    }
    const char  *text  = argv[optind];
    llmrt_model *model = cli_load_model(c.model_path, 1, c.load_format);
    if (!model) return 1;
    int32_t      n = 0;
    llmrt_status s = llmrt_tokenize(model, text, strlen(text), add_special, parse_special, NULL, 0, &n);
    int32_t     *ids = NULL;
    if (s == LLMRT_ERR_BUFFER_TOO_SMALL || s == LLMRT_OK) {
        ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
        s   = llmrt_tokenize(model, text, strlen(text), add_special, parse_special, ids, n, &n);
    }
    if (s != LLMRT_OK) {
        fprintf(stderr, "llmrt tokenize: %s\n", llmrt_last_error());
        free(ids);
        llmrt_model_destroy(model);
        return 1;
    }
    for (int32_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? ",%d" : "%d", ids[i]);
            continue;
        }
        const char *piece = llmrt_token_piece(model, ids[i]);
        printf("%8d  ", ids[i]);
        for (const unsigned char *p = (const unsigned char *)(piece ? piece : ""); *p; p++)
            printf(*p < 0x20 || *p == 0x7f ? "\\x%02x" : "%c", *p);
        printf("\n");
    }
    if (ids_only) printf("\n");
    fprintf(stderr, "%d tokens\n", n);
    free(ids);
    llmrt_model_destroy(model);
    return 0;
}
