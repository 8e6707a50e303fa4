/* dsinfer: one binary, one subcommand per file in cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command k_commands[] = {
    {"run", cmd_run, "generate text or ids from a prompt"},
    {"info", cmd_info, "architecture, sizes, dtypes and memory of a model"},
    {"bench", cmd_bench, "prefill and decode speed"},
    {"logits", cmd_logits, "teacher-forced logits of a sequence, as raw float32"},
    {"tokenize", cmd_tokenize, "text to token ids (or --decode ids to text), as Hugging Face does"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server with continuous batching"},
    {"quantize", cmd_quantize, "a Hugging Face directory or GGUF to a quantized GGUF (q8_0, q4_k_m, ...)"},
    {"perplexity", cmd_perplexity, "perplexity of a text; KL divergence and top-1 agreement against a base model"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: dsinfer COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", k_commands[i].name, k_commands[i].help);
    fprintf(out, "\n'dsinfer COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "dsinfer: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
