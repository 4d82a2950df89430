/* `llmrt bench`: dispatch to a benchmark mode. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

int bench_latency_main(int argc, char **argv);
int bench_membw_main(int argc, char **argv);
int bench_serve_main(int argc, char **argv);
int bench_sweep_main(int argc, char **argv);
int bench_tokenizer_main(int argc, char **argv);

int bench_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: llmrt bench <mode> [options]\n"
                "modes:\n"
                "  latency   prompt and generation tokens/s (llama-bench style) with the roofline\n"
                "  serve     online load: TTFT, TPOT, ITL, E2E percentiles, throughput, goodput\n"
                "  sweep     serve at several concurrencies (or input lengths)\n"
                "  tokenizer tokenization throughput: TOKENIZER TEXT_FILE [--reps N] [--time S]\n"
                "  membw     memory bandwidth probe (GB/s), the CPU roofline reference\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "latency")) return bench_latency_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve")) return bench_serve_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sweep")) return bench_sweep_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenizer")) return bench_tokenizer_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "membw")) return bench_membw_main(argc - 1, argv + 1);
    fprintf(stderr, "llmrt bench: unknown mode '%s'\n", argv[1]);
    return 2;
}
