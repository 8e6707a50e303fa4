/* Scheduler: continuous batching gives every request exactly the tokens a lone session gives
 * (batch invariance, chunked prefill, prefix reuse), cancellation frees blocks, the queue limit
 * and the context limit are enforced. Model: tests/fixtures/dense/llama_gqa_f32 (vocab 512,
 * context 128). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/scheduler.h"
#include "engine/session.h"

static ds_model *g_model;

static int setup(void **state) {
    const char *src = getenv("DSINFER_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/dense/llama_gqa_f32", src ? src : ".");
    ds_err err = {0};
    if (ds_model_load(path, &g_model, &err) != 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    ds_model_free(g_model);
    return 0;
}

/* Greedy continuation of `prompt` by a lone session. */
static void reference(const int32_t *prompt, int n_prompt, int n_gen, int32_t *out) {
    ds_pool *pool = ds_pool_create(2);
    ds_session s;
    ds_err err = {0};
    assert_int_equal(ds_session_init(&s, g_model, pool, n_prompt + n_gen, 64, &err), 0);
    ds_sampler_params p = {.temperature = 0, .top_p = 1, .repeat_penalty = 1};
    ds_sampler *smp = ds_sampler_create(&p, g_model->hp.n_vocab, g_model->hp.n_vocab);
    int32_t toks[256];
    memcpy(toks, prompt, sizeof *prompt * (size_t)n_prompt);
    assert_int_equal(ds_session_feed(&s, prompt, n_prompt, &err), 0);
    for (int i = 0; i < n_gen; i++) {
        int32_t id = ds_sampler_sample(smp, s.logits, toks, n_prompt + i, n_prompt);
        toks[n_prompt + i] = out[i] = id;
        if (i + 1 < n_gen) assert_int_equal(ds_session_feed(&s, &id, 1, &err), 0);
    }
    ds_sampler_free(smp);
    ds_session_free(&s);
    ds_pool_destroy(pool);
}

static sched_engine *engine(int parallel, int queue, int step_tokens) {
    sched_config c = {.parallel = parallel, .ctx = 128, .queue = queue, .block_size = 8,
                      .step_tokens = step_tokens, .n_threads = 2};
    sched_engine *e;
    ds_err err = {0};
    assert_int_equal(sched_create(g_model, &c, &e, &err), 0);
    return e;
}

static sched_req *request(const int32_t *prompt, int n_prompt, int n_gen) {
    ds_sampler_params p = {.temperature = 0, .top_p = 1, .repeat_penalty = 1};
    return sched_req_new(prompt, n_prompt, 1, n_gen, &p, -1, true);
}

static void wait_done(sched_req *r) {
    sched_req_lock(r);
    while (r->n_finished < r->n_choices) sched_req_wait(r, r->version, 100);
    sched_req_unlock(r);
}

static void fill(int32_t *p, int n, int salt) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)(1 + (i * 37 + salt * 101) % 500);
}

static void test_batched_equals_alone(void **state) {
    enum { NR = 4, NGEN = 12 };
    const int lens[NR] = {5, 23, 40, 9};
    int32_t prompts[NR][64], want[NR][NGEN];
    for (int i = 0; i < NR; i++) {
        fill(prompts[i], lens[i], i);
        reference(prompts[i], lens[i], NGEN, want[i]);
    }
    /* a 7-token step budget: long prompts are read in chunks beside running decodes */
    sched_engine *e = engine(3, 8, 7);
    sched_req *r[NR];
    ds_err err = {0};
    for (int i = 0; i < NR; i++) {
        r[i] = request(prompts[i], lens[i], NGEN);
        assert_int_equal(sched_submit(e, r[i], &err), SCHED_OK);
    }
    for (int i = 0; i < NR; i++) {
        wait_done(r[i]);
        assert_int_equal(r[i]->choices[0].finish, SCHED_FINISH_LENGTH);
        assert_int_equal(r[i]->choices[0].n_tokens, NGEN);
        for (int k = 0; k < NGEN; k++) assert_int_equal(r[i]->choices[0].tokens[k].id, want[i][k]);
        sched_req_release(r[i]);
    }
    sched_destroy(e);
}

static void test_prefix_reuse_same_tokens(void **state) {
    enum { N = 30, NGEN = 8 };
    int32_t p[N], want[NGEN];
    fill(p, N, 9);
    reference(p, N, NGEN, want);
    sched_engine *e = engine(2, 4, 64);
    ds_err err = {0};
    for (int round = 0; round < 2; round++) {
        sched_req *r = request(p, N, NGEN);
        assert_int_equal(sched_submit(e, r, &err), SCHED_OK);
        wait_done(r);
        assert_int_equal(r->choices[0].n_cached, round == 0 ? 0 : 24); /* 3 full blocks of 8 */
        for (int k = 0; k < NGEN; k++) assert_int_equal(r->choices[0].tokens[k].id, want[k]);
        sched_req_release(r);
    }
    sched_stats st;
    sched_get_stats(e, &st);
    assert_int_equal(st.prefix_queried_tokens, 2 * N);
    assert_int_equal(st.prefix_hit_tokens, 24);
    sched_destroy(e);
}

static void test_cancel_frees_blocks(void **state) {
    int32_t p[10];
    fill(p, 10, 3);
    sched_engine *e = engine(2, 4, 64);
    ds_err err = {0};
    sched_req *r = request(p, 10, 100);
    assert_int_equal(sched_submit(e, r, &err), SCHED_OK);
    sched_req_lock(r);
    while (r->choices[0].n_tokens < 2) sched_req_wait(r, r->version, 100);
    sched_req_unlock(r);
    sched_stats st;
    sched_get_stats(e, &st);
    assert_true(st.kv_blocks_used > 0);
    sched_req_cancel(e, r);
    wait_done(r);
    assert_int_equal(r->choices[0].finish, SCHED_FINISH_CANCELLED);
    for (int i = 0; i < 100; i++) {
        sched_get_stats(e, &st);
        if (st.kv_blocks_used == 0) break;
        usleep(10000);
    }
    assert_int_equal(st.kv_blocks_used, 0);
    sched_req_release(r);
    sched_destroy(e);
}

static void test_limits(void **state) {
    int32_t p[120];
    fill(p, 120, 5);
    sched_engine *e = engine(1, 1, 64);
    ds_err err = {0};
    sched_req *big = request(p, 120, 9);
    assert_int_equal(sched_submit(e, big, &err), SCHED_TOO_BIG);
    assert_non_null(strstr(err.msg, "128"));
    sched_req_release(big);
    sched_req *r[3];
    int full = 0;
    for (int i = 0; i < 3; i++) {
        r[i] = request(p, 4, 100);
        sched_submit_result rc = sched_submit(e, r[i], &err);
        full += rc == SCHED_QUEUE_FULL;
        if (rc != SCHED_OK) {
            sched_req_release(r[i]);
            r[i] = NULL;
        }
    }
    assert_true(full >= 1);
    sched_destroy(e); /* cancels what still runs or waits */
    for (int i = 0; i < 3; i++) {
        if (!r[i]) continue;
        assert_int_equal(r[i]->n_finished, 1);
        sched_req_release(r[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_prefix_reuse_same_tokens),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
