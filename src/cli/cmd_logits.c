/* dsinfer logits: teacher-forced logits at every position of a sequence of ids, written as
 * raw little-endian float32, row-major (positions × vocab_size) — the format reference
 * fixtures (llama2.c, Hugging Face) are stored in, so they can be compared byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/session.h"

#define CMD "logits"

static void usage(FILE *out) {
    fprintf(out, "usage: dsinfer logits -m MODEL --prompt-ids IDS [-t T] [--chunk N] -o FILE\n"
                 "  writes len(IDS) × vocab_size float32 values (little-endian) to FILE ('-' = stdout)\n"
                 "  --chunk N  tokens per forward call (default 256); results do not depend on it\n");
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL, *out_path = NULL;
    int64_t threads = 0, chunk = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!(v = arg_value(argc, argv, &i, CMD))) return 2;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "--prompt-ids")) ids_s = v;
        else if (!strcmp(a, "-o")) out_path = v;
        else if (!strcmp(a, "-t")) {
            if (arg_int(CMD, a, v, 1, 256, &threads)) return 2;
        } else if (!strcmp(a, "--chunk")) {
            if (arg_int(CMD, a, v, 1, 1 << 16, &chunk)) return 2;
        } else {
            fprintf(stderr, "dsinfer logits: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model || !ids_s || !out_path) {
        usage(stderr);
        return 2;
    }
    int64_t *raw;
    int n;
    if (arg_int_list(CMD, "--prompt-ids", ids_s, &raw, &n)) return 2;
    if (n == 0) {
        fprintf(stderr, "dsinfer logits: --prompt-ids is empty\n");
        return 2;
    }
    ds_err err = {0};
    ds_model *m;
    if (ds_model_load(model, &m, &err)) {
        fprintf(stderr, "dsinfer logits: %s\n", err.msg);
        free(raw);
        return 1;
    }
    int status = 1;
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    float *logits = malloc(sizeof *logits * (size_t)n * (size_t)m->hp.n_vocab);
    ds_pool *pool = ds_pool_create(threads ? (int)threads : ds_cpu_count());
    ds_session s = {0};
    if (!ids || !logits || !pool) {
        fprintf(stderr, "dsinfer logits: out of memory\n");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (raw[i] >= m->hp.n_vocab) {
            fprintf(stderr, "dsinfer logits: --prompt-ids: id %lld at position %d is not below vocab_size %d\n",
                    (long long)raw[i], i, m->hp.n_vocab);
            status = 2;
            goto out;
        }
        ids[i] = (int32_t)raw[i];
    }
    if (ds_session_init(&s, m, pool, n, (int)chunk, &err) || ds_session_feed_all(&s, ids, n, logits, &err)) {
        fprintf(stderr, "dsinfer logits: %s\n", err.msg);
        goto out;
    }
    FILE *f = strcmp(out_path, "-") ? fopen(out_path, "wb") : stdout;
    if (!f) {
        perror(out_path);
        goto out;
    }
    size_t count = (size_t)n * (size_t)m->hp.n_vocab;
    int ok = fwrite(logits, sizeof(float), count, f) == count;
    if (f != stdout) ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "dsinfer logits: %s: write failed\n", out_path);
        goto out;
    }
    status = 0;
out:
    ds_session_free(&s);
    ds_pool_destroy(pool);
    free(logits);
    free(ids);
    free(raw);
    ds_model_free(m);
    return status;
}
