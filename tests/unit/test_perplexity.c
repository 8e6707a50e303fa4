/* engine/perplexity against a plain recomputation: every chunk fed whole through a session (a
 * different batching than ds_perplexity's), log-softmax, NLL, KL and argmax in double on the
 * scored positions. Model: the dense fixture's Q4_1 GGUF; base: the same weights in f32
 * (tests/fixtures/dense/llama_gqa_f32), so KL is small but not zero. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/perplexity.h"
#include "engine/session.h"

#define N_TOKENS 100
#define BOS 1

static ds_model *g_model, *g_base;
static int32_t g_tokens[N_TOKENS];

static ds_model *load(const char *rel) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/dense/%s", src ? src : ".", rel);
    ds_model *m = NULL;
    ds_err err = {0};
    if (ds_model_load(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    return m;
}

static int setup(void **state) {
    (void)state;
    g_model = load("llama_gqa_f32/llama_gqa_q4_1.gguf");
    g_base = load("llama_gqa_f32");
    uint32_t x = 12345;
    for (int i = 0; i < N_TOKENS; i++) {
        x = x * 1664525u + 1013904223u;
        g_tokens[i] = 3 + (int32_t)((x >> 8) % 509);
    }
    return g_model && g_base ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ds_model_free(g_model);
    ds_model_free(g_base);
    return 0;
}

/* Logits of every position of one chunk, its first token replaced by BOS. */
static float *chunk_logits(const ds_model *m, ds_pool *pool, int chunk, int n_ctx) {
    int32_t ids[64];
    memcpy(ids, g_tokens + chunk * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
    ids[0] = BOS;
    float *out = malloc(sizeof(float) * (size_t)n_ctx * (size_t)m->hp.n_vocab);
    ds_session s;
    ds_err err = {0};
    assert_int_equal(ds_session_init(&s, m, pool, n_ctx, n_ctx, &err), 0);
    assert_int_equal(ds_session_feed_all(&s, ids, n_ctx, out, &err), 0);
    ds_session_free(&s);
    return out;
}

static void log_softmax(const float *x, int n, double *out) {
    double max = x[0], sum = 0;
    for (int i = 1; i < n; i++) max = fmax(max, x[i]);
    for (int i = 0; i < n; i++) sum += exp(x[i] - max);
    for (int i = 0; i < n; i++) out[i] = x[i] - max - log(sum);
}

static int argmax(const double *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Mean and llama.cpp's standard error of the n values in v. */
static void mean_err(const double *v, int n, double *mean, double *err) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += v[i], s2 += v[i] * v[i];
    *mean = s / n;
    *err = sqrt((s2 / n - *mean * *mean) / (n - 1));
}

static void test_matches_plain_recomputation(void **state) {
    (void)state;
    const int n_ctx = 16, first = n_ctx / 2, V = g_model->hp.n_vocab;
    ds_pool *pool = ds_pool_create(2);
    const ds_ppl_opts o = {.n_ctx = n_ctx, .batch = 5, .max_chunks = 0, .bos_id = BOS};
    ds_ppl_result r;
    ds_err err = {0};
    assert_int_equal(ds_perplexity(g_model, g_base, pool, g_tokens, N_TOKENS, &o, NULL, NULL, &r, &err), 0);

    const int n_chunks = N_TOKENS / n_ctx, rows = n_ctx - 1 - first;
    double nll[64], base_nll[64], kl[64], agree[64], *lm = malloc(sizeof(double) * V), *lb = malloc(sizeof(double) * V);
    int n = 0;
    for (int c = 0; c < n_chunks; c++) {
        float *xm = chunk_logits(g_model, pool, c, n_ctx), *xb = chunk_logits(g_base, pool, c, n_ctx);
        for (int p = first; p < first + rows; p++, n++) {
            const int32_t next = g_tokens[c * n_ctx + p + 1];
            log_softmax(xm + (size_t)p * V, V, lm);
            log_softmax(xb + (size_t)p * V, V, lb);
            nll[n] = -lm[next];
            base_nll[n] = -lb[next];
            kl[n] = 0;
            for (int i = 0; i < V; i++) kl[n] += exp(lb[i]) * (lb[i] - lm[i]);
            agree[n] = argmax(lm, V) == argmax(lb, V);
        }
        free(xm), free(xb);
    }
    double mean, e;
    assert_int_equal(r.n_chunks, n_chunks);
    assert_int_equal(r.chunks_done, n_chunks);
    assert_int_equal(r.n_scored, n);
    assert_true(r.has_base);
    mean_err(nll, n, &mean, &e);
    assert_float_equal(r.ppl, exp(mean), 1e-5 * exp(mean));
    assert_float_equal(r.ppl_err, exp(mean) * e, 1e-4 * exp(mean) * e);
    mean_err(base_nll, n, &mean, &e);
    assert_float_equal(r.base_ppl, exp(mean), 1e-5 * exp(mean));
    mean_err(kl, n, &mean, &e);
    assert_true(mean > 1e-5); /* Q4_1 against f32: the comparison is not vacuous */
    assert_float_equal(r.kl.mean, mean, 1e-6);
    assert_float_equal(r.kl.err, e, 1e-6);
    mean_err(agree, n, &mean, &e);
    assert_float_equal(r.top1.mean, mean, 1e-12);
    free(lm), free(lb);
    ds_pool_destroy(pool);
}

static void test_chunk_limit_and_short_text(void **state) {
    (void)state;
    ds_pool *pool = ds_pool_create(1);
    ds_ppl_opts o = {.n_ctx = 16, .batch = 16, .max_chunks = 2, .bos_id = -1};
    ds_ppl_result r;
    ds_err err = {0};
    assert_int_equal(ds_perplexity(g_model, NULL, pool, g_tokens, N_TOKENS, &o, NULL, NULL, &r, &err), 0);
    assert_int_equal(r.n_chunks, 2);
    assert_int_equal(r.n_scored, 2 * 7);
    assert_false(r.has_base);
    assert_true(r.ppl > 1 && isfinite(r.ppl));

    assert_int_equal(ds_perplexity(g_model, NULL, pool, g_tokens, 31, &o, NULL, NULL, &r, &err), -1);
    assert_non_null(strstr(err.msg, "the text is 31 tokens; a context of 16 needs at least 32"));
    o.n_ctx = 3;
    assert_int_equal(ds_perplexity(g_model, NULL, pool, g_tokens, N_TOKENS, &o, NULL, NULL, &r, &err), -1);
    assert_non_null(strstr(err.msg, "too small"));
    ds_pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_plain_recomputation),
        cmocka_unit_test(test_chunk_limit_and_short_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
