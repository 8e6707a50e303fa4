/* Batch and thread invariance of the forward pass (ARCHITECTURE.md): the logits of a position
 * are bit-identical whether its sequence runs alone or beside another, in one prompt chunk or
 * many, on one thread or several. The sequences run over several 32-position attention tiles
 * and more tokens than one attention task takes. Uses the stories260k checkpoint in ../shared
 * (dense, GQA) and the tiny DeepSeek-V2 fixture (MLA, MoE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/session.h"

#define NA 75
#define NB 41
#define CTX 128

static int32_t seq_a[NA], seq_b[NB];

#define N_MODELS 2
static ds_model *g_models[N_MODELS];
static ds_model *g_model; /* the one under test */

static ds_model *load(const char *rel, int required) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    ds_err err = {0};
    ds_model *m;
    if (ds_model_load(path, &m, &err) == 0) return m;
    const char *ci = getenv("CI");
    if (required || (ci && !strcmp(ci, "true"))) fail_msg("%s is unavailable: %s", path, err.msg);
    fprintf(stderr, "skipping: %s\n", err.msg);
    return NULL;
}

static int setup(void **state) {
    g_models[0] = load("../shared/models/stories260k", 0);
    g_models[1] = load("tests/fixtures/deepseek/v2", 1);
    for (int i = 0; i < NA; i++) seq_a[i] = i ? 3 + (i * 131 + 7) % 500 : 1;
    for (int i = 0; i < NB; i++) seq_b[i] = i ? 3 + (i * 61 + 29) % 500 : 1;
    return 0;
}

static int teardown(void **state) {
    for (int i = 0; i < N_MODELS; i++) ds_model_free(g_models[i]);
    return 0;
}

/* Logits of every position of ids, fed in chunks of `chunk` with `threads` threads. */
static float *alone(const int32_t *ids, int n, int chunk, int threads) {
    ds_pool *pool = ds_pool_create(threads);
    ds_session s;
    ds_err err = {0};
    assert_int_equal(ds_session_init(&s, g_model, pool, CTX, chunk, &err), 0);
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)g_model->hp.n_vocab);
    assert_int_equal(ds_session_feed_all(&s, ids, n, out, &err), 0);
    ds_session_free(&s);
    ds_pool_destroy(pool);
    return out;
}

static void chunk_and_thread_invariance(void) {
    const size_t bytes = sizeof(float) * NA * (size_t)g_model->hp.n_vocab;
    float *ref = alone(seq_a, NA, CTX, 1);
    const int chunks[] = {64, 5, 1};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        float *chunked = alone(seq_a, NA, chunks[i], 1);
        assert_memory_equal(chunked, ref, bytes);
        free(chunked);
    }
    /* one token per step on more threads than KV heads: attention tasks take single heads */
    float *threaded = alone(seq_a, NA, CTX, 3), *threaded_steps = alone(seq_a, NA, 1, 3);
    assert_memory_equal(threaded, ref, bytes);
    assert_memory_equal(threaded_steps, ref, bytes);
    free(ref), free(threaded), free(threaded_steps);
}

static void two_sequences_in_one_batch(void) {
    const int V = g_model->hp.n_vocab;
    float *ref_a = alone(seq_a, NA, CTX, 2), *ref_b = alone(seq_b, NB, CTX, 2);
    ds_pool *pool = ds_pool_create(2);
    ds_kv_cache *kv;
    ds_err err = {0};
    int wk, wv;
    ds_model_kv_widths(g_model, &wk, &wv);
    assert_int_equal(ds_kv_create(&kv, g_model->hp.n_layer, wk, wv, 4, 40, &err), 0);
    ds_kv_seq sa = {0}, sb = {0};
    /* Interleave the block allocation too, so the two tables are not contiguous. */
    for (int n = 4; n <= NA + 3; n += 4) {
        assert_int_equal(ds_kv_seq_reserve(kv, &sa, n < NA ? n : NA, &err), 0);
        assert_int_equal(ds_kv_seq_reserve(kv, &sb, n < NB ? n : NB, &err), 0);
    }
    int32_t tokens[NA + NB], pos[NA + NB], seq[NA + NB];
    int n = 0;
    for (int i = 0; i < NA || i < NB; i++) {
        if (i < NB) tokens[n] = seq_b[i], pos[n] = i, seq[n++] = 1;
        if (i < NA) tokens[n] = seq_a[i], pos[n] = i, seq[n++] = 0;
    }
    const int32_t *tables[2] = {sa.blocks, sb.blocks};
    const int32_t counts[2] = {sa.n_blocks, sb.n_blocks};
    ds_batch b = {.n_tokens = n, .tokens = tokens, .pos = pos, .seq = seq, .n_seqs = 2,
                  .block_tables = tables, .block_counts = counts};
    ds_forward_ctx *fc = ds_forward_ctx_create(g_model, n, CTX);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)V);
    assert_int_equal(ds_forward(g_model, fc, kv, pool, &b, logits, &err), 0);
    for (int i = 0; i < n; i++) {
        const float *ref = (seq[i] == 0 ? ref_a : ref_b) + (size_t)pos[i] * V;
        assert_memory_equal(logits + (size_t)i * V, ref, sizeof(float) * (size_t)V);
    }
    free(logits), free(ref_a), free(ref_b);
    ds_forward_ctx_free(fc);
    ds_kv_seq_release(kv, &sa);
    ds_kv_seq_release(kv, &sb);
    assert_int_equal(kv->n_free, kv->n_blocks);
    ds_kv_free(kv);
    ds_pool_destroy(pool);
}

static void for_each_model(void (*check)(void)) {
    int ran = 0;
    for (int i = 0; i < N_MODELS; i++) {
        if (!(g_model = g_models[i])) continue;
        check();
        ran++;
    }
    if (!ran) skip();
}

static void test_chunk_and_thread_invariance(void **state) { for_each_model(chunk_and_thread_invariance); }

static void test_two_sequences_in_one_batch(void **state) { for_each_model(two_sequences_in_one_batch); }

static void test_bad_batches_fail_cleanly(void **state) {
    if (!(g_model = g_models[0])) skip();
    ds_pool *pool = ds_pool_create(1);
    ds_session s;
    ds_err err = {0};
    assert_int_equal(ds_session_init(&s, g_model, pool, 8, 4, &err), 0);
    int32_t bad = g_model->hp.n_vocab;
    assert_int_equal(ds_session_feed(&s, &bad, 1, &err), -1);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_int_equal(ds_session_feed(&s, ids, 9, &err), -1);
    assert_non_null(strstr(err.msg, "context holds 8"));
    ds_session_free(&s);
    ds_pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_and_thread_invariance),
        cmocka_unit_test(test_two_sequences_in_one_batch),
        cmocka_unit_test(test_bad_batches_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
