/* dsinfer serve: the OpenAI-compatible HTTP server (src/server). Flags as issue #6 fixes them;
 * -t and the drain time are extras. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "server/server.h"

#define CMD "serve"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsinfer serve -m MODEL [--host 127.0.0.1] [--port 8080] [--alias NAME] [--parallel N]\n"
            "                     [--ctx N] [--queue N] [--api-key KEY | --api-key-file F] [--timeout S]\n"
            "                     [--read-timeout S] [--max-body BYTES] [-t THREADS] [--drain-timeout S]\n"
            "  MODEL            a Hugging Face model directory or a .gguf file (with its tokenizer)\n"
            "  --alias NAME     model id in the API (default: MODEL's basename without extension)\n"
            "  --parallel N     most sequences generating at once (default 4)\n"
            "  --ctx N          most tokens per sequence (default: the model's, at most 4096);\n"
            "                   the KV pool holds ctx x parallel tokens\n"
            "  --queue N        most requests waiting beyond the running ones; more get 429 (default 64)\n"
            "  --api-key KEY    require 'Authorization: Bearer KEY' (not on /health, /metrics)\n"
            "  --api-key-file F the key is the first line of F\n"
            "  --timeout S      most seconds per request (default 600)\n"
            "  --read-timeout S most seconds to receive a whole request; 408 past it (default 30)\n"
            "  --max-body BYTES largest request body; 413 past it (default 16 MiB)\n"
            "  -t THREADS       forward-pass threads (default: all cores)\n"
            "  --drain-timeout S on SIGINT/SIGTERM, how long in-flight requests may finish (default 30)\n");
}

static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dsinfer serve: cannot open --api-key-file %s\n", path);
        return NULL;
    }
    char line[4096];
    char *key = NULL;
    if (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        if (n > 0) key = strdup(line);
    }
    fclose(f);
    if (!key) fprintf(stderr, "dsinfer serve: --api-key-file %s holds no key on its first line\n", path);
    return key;
}

int cmd_serve(int argc, char **argv) {
    srv_config c = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 64, .timeout_s = 600,
                    .read_timeout_s = 30, .max_body = 16u << 20, .drain_timeout_s = 30};
    const char *key_file = NULL;
    char *key = NULL;
    int64_t v;
    double d;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
#define VALUE() if (!(s = arg_value(argc, argv, &i, CMD))) goto usage_error
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VALUE();
            c.model_path = s;
        } else if (!strcmp(a, "--host")) {
            VALUE();
            c.host = s;
        } else if (!strcmp(a, "--port")) {
            VALUE();
            if (arg_int(CMD, a, s, 0, 65535, &v)) goto usage_error;
            c.port = (int)v;
        } else if (!strcmp(a, "--alias")) {
            VALUE();
            c.alias = s;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            VALUE();
            if (arg_int(CMD, a, s, 1, 256, &v)) goto usage_error;
            c.parallel = (int)v;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            VALUE();
            if (arg_int(CMD, a, s, 2, 1 << 24, &v)) goto usage_error;
            c.ctx = (int)v;
        } else if (!strcmp(a, "--queue")) {
            VALUE();
            if (arg_int(CMD, a, s, 1, 1 << 20, &v)) goto usage_error;
            c.queue = (int)v;
        } else if (!strcmp(a, "--api-key")) {
            VALUE();
            c.api_key = s;
        } else if (!strcmp(a, "--api-key-file")) {
            VALUE();
            key_file = s;
        } else if (!strcmp(a, "--timeout")) {
            VALUE();
            if (arg_float(CMD, a, s, 0.001, 1e9, &d)) goto usage_error;
            c.timeout_s = d;
        } else if (!strcmp(a, "--read-timeout")) {
            VALUE();
            if (arg_float(CMD, a, s, 0.001, 1e9, &d)) goto usage_error;
            c.read_timeout_s = d;
        } else if (!strcmp(a, "--max-body")) {
            VALUE();
            if (arg_int(CMD, a, s, 1, INT64_MAX, &v)) goto usage_error;
            c.max_body = (uint64_t)v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VALUE();
            if (arg_int(CMD, a, s, 1, 256, &v)) goto usage_error;
            c.n_threads = (int)v;
        } else if (!strcmp(a, "--drain-timeout")) {
            VALUE();
            if (arg_float(CMD, a, s, 0, 1e9, &d)) goto usage_error;
            c.drain_timeout_s = d;
        } else {
            fprintf(stderr, "dsinfer serve: unknown option '%s'\n", a);
            goto usage_error;
        }
#undef VALUE
    }
    if (!c.model_path) {
        fprintf(stderr, "dsinfer serve: -m MODEL is required\n");
        goto usage_error;
    }
    if (c.api_key && key_file) {
        fprintf(stderr, "dsinfer serve: give --api-key or --api-key-file, not both\n");
        goto usage_error;
    }
    if (key_file) {
        if (!(key = read_key_file(key_file))) return 2;
        c.api_key = key;
    }
    int status = srv_run(&c);
    free(key);
    return status;
usage_error:
    fprintf(stderr, "(dsinfer serve --help for usage)\n");
    return 2;
}
