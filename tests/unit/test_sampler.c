/* Sampler: greedy picks the first maximum, padding rows are never drawn, the same seed gives
 * the same draws, and each filter keeps exactly the candidates it should. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"

#define V 8

static int32_t draw(ds_sampler_params p, const float *base, int n_valid) {
    ds_sampler *s = ds_sampler_create(&p, V, n_valid);
    float l[V];
    memcpy(l, base, sizeof l);
    int32_t id = ds_sampler_sample(s, l, NULL, 0, 0);
    ds_sampler_free(s);
    return id;
}

static void test_greedy_first_max_and_padding(void **state) {
    const float l[V] = {0, 3, 1, 3, 0, 0, 0, 9};
    ds_sampler_params p = {.temperature = 0, .top_p = 1, .repeat_penalty = 1};
    assert_int_equal(draw(p, l, V), 7);
    assert_int_equal(draw(p, l, 7), 1); /* row 7 is padding; ties go to the lower id */
}

static void test_seeded_draws_repeat(void **state) {
    const float l[V] = {1, 1, 1, 1, 1, 1, 1, 1};
    ds_sampler_params p = {.temperature = 1, .top_p = 1, .repeat_penalty = 1, .seed = 42};
    ds_sampler *a = ds_sampler_create(&p, V, 6), *b = ds_sampler_create(&p, V, 6);
    int seen[V] = {0};
    for (int i = 0; i < 200; i++) {
        float la[V], lb[V];
        memcpy(la, l, sizeof la);
        memcpy(lb, l, sizeof lb);
        int32_t x = ds_sampler_sample(a, la, NULL, 0, 0), y = ds_sampler_sample(b, lb, NULL, 0, 0);
        assert_int_equal(x, y);
        assert_true(x >= 0 && x < 6);
        seen[x]++;
    }
    for (int i = 0; i < 6; i++) assert_true(seen[i] > 0);
    ds_sampler_free(a);
    ds_sampler_free(b);
}

static void test_filters(void **state) {
    const float l[V] = {5, 4, 3, 2, 1, 0, -1, -2};
    for (uint64_t seed = 0; seed < 50; seed++) {
        ds_sampler_params k2 = {.temperature = 1, .top_k = 2, .top_p = 1, .repeat_penalty = 1, .seed = seed};
        assert_true(draw(k2, l, V) <= 1);
        /* p(0) = 0.63 → top_p 0.5 keeps only id 0 */
        ds_sampler_params tp = {.temperature = 1, .top_p = 0.5f, .repeat_penalty = 1, .seed = seed};
        assert_int_equal(draw(tp, l, V), 0);
        /* min_p 0.3: p(1)/p(0) = e^-1 = 0.37 kept, p(2)/p(0) = 0.135 dropped */
        ds_sampler_params mp = {.temperature = 1, .top_p = 1, .min_p = 0.3f, .repeat_penalty = 1, .seed = seed};
        assert_true(draw(mp, l, V) <= 1);
    }
}

static void test_penalties(void **state) {
    ds_sampler_params p = {.temperature = 0, .top_p = 1, .repeat_penalty = 2.0f};
    ds_sampler *s = ds_sampler_create(&p, V, V);
    float l[V] = {4, 3, -1, 0, 0, 0, 0, 0};
    int32_t ctx[3] = {0, 0, 2};
    assert_int_equal(ds_sampler_sample(s, l, ctx, 3, 3), 1); /* 4/2 = 2 < 3 */
    assert_float_equal(l[0], 2.0f, 0);
    assert_float_equal(l[2], -2.0f, 0); /* negative logits are multiplied */
    ds_sampler_free(s);
    ds_sampler_params f = {.temperature = 0, .top_p = 1, .repeat_penalty = 1, .frequency_penalty = 1.0f,
                           .presence_penalty = 0.5f};
    s = ds_sampler_create(&f, V, V);
    float m[V] = {4, 3, 0, 0, 0, 0, 0, 0};
    int32_t gen[4] = {1, 0, 0, 5}; /* prompt = {1}; generated 0, 0, 5 */
    assert_int_equal(ds_sampler_sample(s, m, gen, 4, 1), 1);
    assert_float_equal(m[0], 4 - 0.5f - 2.0f, 1e-6);
    assert_float_equal(m[1], 3, 0); /* prompt tokens are not penalised */
    assert_float_equal(m[5], -1.5f, 1e-6);
    ds_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_first_max_and_padding),
        cmocka_unit_test(test_seeded_draws_repeat),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_penalties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
