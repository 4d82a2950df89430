/* llmrt info: print a model's configuration as the loader understood it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_info(int argc, char **argv) {
    const char *model_path = cli_default_model();
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"device", required_argument, 0, 'D'},
                                         {"lora", required_argument, 0, 'L'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind     = 1;
    cli_device = LLMRT_DEVICE_CPU; /* it runs no forward: the CPU unless asked */
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        if (c == 'm') model_path = optarg;
        else if (c == 'D' && cli_parse_device(optarg) == 0) continue;
        else if (c == 'L') {
            if (cli_parse_lora(optarg) < 0) return 2;
        } else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: llmrt info [-m MODEL] [--device cuda|cpu] [--lora PATH[:SCALE]]...\n");
            return c == 'h' ? 0 : 2;
        }
    }
    llmrt_model *model = cli_load_model(model_path, 1, LLMRT_LOAD_AUTO);
    if (!model) return 1;
    llmrt_model_info i = {.struct_size = sizeof i};
    llmrt_model_get_info(model, &i);
    printf("model:             %s\narchitecture:      %s\nweights:           %s, %lld params, "
           "%.1f MB\nvocab:             %d\nhidden:            %d\nintermediate:      %d\n"
           "layers:            %d\nheads / kv heads:  %d / %d (head dim %d)\ncontext:           %d\n"
           "rope theta:        %g\nrms eps:           %g\ntied embeddings:   %s\nbos:               %d\n",
           model_path, i.architecture, i.weight_format, (long long)i.n_params,
           (double)i.weight_bytes / 1e6, i.vocab_size, i.hidden_size, i.intermediate_size,
           i.n_layers, i.n_heads, i.n_kv_heads, i.head_dim, i.max_context, (double)i.rope_theta,
           (double)i.rms_norm_eps, i.tie_word_embeddings ? "yes" : "no", i.bos_token_id);
    printf("eos:              ");
    for (int k = 0; k < i.n_eos_token_ids; k++) printf(" %d", i.eos_token_ids[k]);
    printf("\n");
    printf("backend:           %s (%s)\n", i.backend, i.device_name);
    if (i.n_fallbacks > 0) printf("fallback:          %s\n", i.fallback);
    if (i.n_lora_merged > 0 || i.n_lora_unmerged > 0)
        printf("lora:              %d merged into the weights, %d kept unmerged%s\n",
               i.n_lora_merged, i.n_lora_unmerged,
               i.n_lora_unmerged > 0 ? " (quantised base: applied per token by an engine to "
                                       "requests that name no adapter)" : "");
    llmrt_model_destroy(model);
    return 0;
}
