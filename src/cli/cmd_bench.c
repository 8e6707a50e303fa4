/* dsinfer bench: prefill and decode speed, in the manner of llama-bench. For every (-p, -n, -t)
 * combination: prefill feeds -p tokens into an empty context; decode feeds -n tokens one at a
 * time, also starting from an empty context (llama-bench's "tg"). Each figure is the median
 * over -r runs. Token ids are fixed pseudo-random ids, so runs are comparable. As llama-bench
 * does, each thread count first runs an untimed warm-up (a prefill of up to 32 tokens, then one
 * decode step), so the first timed run does not pay for faulting the mapped weights in;
 * --no-warmup skips it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/session.h"

#define CMD "bench"
#define PREFILL_CHUNK 512

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The dtype holding the most weight bytes, e.g. "BF16" or "Q4_1". */
static const char *main_type(const ds_model *m) {
    int64_t n_params;
    uint64_t bytes[DS_DTYPE_COUNT];
    ds_model_weight_stats(m, &n_params, bytes);
    int best = 0;
    for (int t = 1; t < DS_DTYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    return ds_dtype_name((ds_dtype)best);
}

/* Tokens per second of one prefill of n tokens, or of n single-token decode steps. */
static int measure(ds_session *s, const int32_t *ids, int n, int decode, double *tok_s, ds_err *err) {
    ds_session_reset(s);
    double t0 = now_s();
    if (decode) {
        for (int i = 0; i < n; i++)
            if (ds_session_feed(s, ids + i, 1, err)) return -1;
    } else if (ds_session_feed(s, ids, n, err)) {
        return -1;
    }
    *tok_s = n / (now_s() - t0);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int64_t *pp = NULL, *tg = NULL, *th = NULL, reps = 3;
    int n_pp = 0, n_tg = 0, n_th = 0, json = 0, warmup = 1, status = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--no-warmup")) {
            warmup = 0;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: dsinfer bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 3] [--json] [--no-warmup]\n"
                   "  -p, -n, -t take comma-separated lists; every combination is measured\n");
            return 0;
        }
        if (!(v = arg_value(argc, argv, &i, CMD))) goto out;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-p")) {
            free(pp);
            if (arg_int_list(CMD, "-p", v, &pp, &n_pp)) goto out;
        } else if (!strcmp(a, "-n")) {
            free(tg);
            if (arg_int_list(CMD, "-n", v, &tg, &n_tg)) goto out;
        } else if (!strcmp(a, "-t")) {
            free(th);
            if (arg_int_list(CMD, "-t", v, &th, &n_th)) goto out;
        } else if (!strcmp(a, "-r")) {
            if (arg_int(CMD, a, v, 1, 1000, &reps)) goto out;
        } else {
            fprintf(stderr, "dsinfer bench: unknown option '%s'\n", a);
            goto out;
        }
    }
    if (!model) {
        fprintf(stderr, "dsinfer bench: -m MODEL is required\n");
        goto out;
    }
    static int64_t def_pp = 512, def_tg = 128;
    int64_t def_th = ds_cpu_count();
    if (!n_pp) pp = memcpy(malloc(sizeof def_pp), &def_pp, sizeof def_pp), n_pp = 1;
    if (!n_tg) tg = memcpy(malloc(sizeof def_tg), &def_tg, sizeof def_tg), n_tg = 1;
    if (!n_th) th = memcpy(malloc(sizeof def_th), &def_th, sizeof def_th), n_th = 1;
    for (int i = 0; i < n_th; i++)
        if (th[i] < 1 || th[i] > 256) {
            fprintf(stderr, "dsinfer bench: -t must be between 1 and 256, got %lld\n", (long long)th[i]);
            goto out;
        }
    ds_err err = {0};
    ds_model *m;
    status = 1;
    if (ds_model_load(model, &m, &err)) {
        fprintf(stderr, "dsinfer bench: %s\n", err.msg);
        goto out;
    }
    int64_t max_len = 1;
    for (int i = 0; i < n_pp; i++) max_len = pp[i] > max_len ? pp[i] : max_len;
    for (int i = 0; i < n_tg; i++) max_len = tg[i] > max_len ? tg[i] : max_len;
    if (max_len > m->hp.n_ctx_train) {
        fprintf(stderr, "dsinfer bench: %lld tokens exceed the model's context %d\n", (long long)max_len, m->hp.n_ctx_train);
        ds_model_free(m);
        goto out;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)max_len);
    double *runs = malloc(sizeof *runs * (size_t)reps);
    for (int64_t i = 0; i < max_len; i++) ids[i] = (int32_t)((i * 7919 + 13) % m->n_vocab_tokens);
    const char *type = main_type(m);
    if (!json) {
        printf("| model | type | threads | test | tokens/s |\n|---|---|---|---|---|\n");
    }
    status = 0;
    for (int ti = 0; ti < n_th && !status; ti++) {
        ds_pool *pool = ds_pool_create((int)th[ti]);
        ds_session s;
        if (!pool || ds_session_init(&s, m, pool, (int)max_len, PREFILL_CHUNK, &err)) {
            fprintf(stderr, "dsinfer bench: %s\n", err.msg[0] ? err.msg : "out of memory");
            ds_pool_destroy(pool);
            status = 1;
            break;
        }
        double ignored;
        const int warm_pp = pp[0] < 32 ? (int)pp[0] : 32;
        if (warmup && ((warm_pp > 0 && measure(&s, ids, warm_pp, 0, &ignored, &err)) ||
                       measure(&s, ids, 1, 1, &ignored, &err))) {
            fprintf(stderr, "dsinfer bench: %s\n", err.msg);
            status = 1;
        }
        for (int pi = 0; pi < n_pp && !status; pi++) {
            for (int ni = 0; ni < n_tg && !status; ni++) {
                double res[2] = {0, 0};
                int64_t counts[2] = {pp[pi], tg[ni]};
                for (int part = 0; part < 2 && !status; part++) {
                    if (!counts[part]) continue;
                    for (int r = 0; r < reps && !status; r++)
                        if (measure(&s, ids, (int)counts[part], part, &runs[r], &err)) {
                            fprintf(stderr, "dsinfer bench: %s\n", err.msg);
                            status = 1;
                        }
                    res[part] = median(runs, (int)reps);
                }
                if (status) break;
                if (json) {
                    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:f}", "model", model, "type", type,
                                          "threads", (json_int_t)th[ti], "prefill_tokens", (json_int_t)pp[pi],
                                          "prefill_tok_s", res[0], "decode_tokens", (json_int_t)tg[ni],
                                          "decode_tok_s", res[1]);
                    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
                    printf("%s\n", text);
                    free(text);
                    json_decref(o);
                } else {
                    if (pp[pi])
                        printf("| %s | %s | %lld | pp%lld | %.2f |\n", model, type, (long long)th[ti], (long long)pp[pi], res[0]);
                    if (tg[ni])
                        printf("| %s | %s | %lld | tg%lld | %.2f |\n", model, type, (long long)th[ti], (long long)tg[ni], res[1]);
                }
                fflush(stdout);
            }
        }
        ds_session_free(&s);
        ds_pool_destroy(pool);
    }
    free(ids);
    free(runs);
    ds_model_free(m);
out:
    free(pp);
    free(tg);
    free(th);
    return status;
}
