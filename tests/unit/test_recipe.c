/* Per-tensor type choice of the mixed recipes (convert/recipe.c): the "more bits" layers of
 * q4_k_m / q5_k_m are llama.cpp's for attn_v and ffn_down whatever order the source file
 * stores its tensors in (GGUF files commonly sort names as strings: blk.0, blk.1, blk.10, …). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "convert/convert_internal.h"

#define N_LAYER 24

/* llama.cpp's use_more_bits(l, 24) written out: l < 3, l >= 21, (l - 3) % 3 == 2. */
static const int k_more_bits[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23};

static bool more_bits(int layer) {
    for (size_t i = 0; i < sizeof k_more_bits / sizeof k_more_bits[0]; i++)
        if (k_more_bits[i] == layer) return true;
    return false;
}

/* A plan of attn_q, attn_v and ffn_down per layer (rows of 256), layers in `order`. */
static void make_plan(cv_plan *p, const int *order) {
    static const char *const k_names[] = {"attn_q", "attn_v", "ffn_down"};
    *p = (cv_plan){.n_layer = N_LAYER};
    const int64_t shape[2] = {32, 256};
    const ds_tensor part = {.type = DS_F32, .ndim = 2, .shape = {32, 256}};
    ds_err err;
    for (int k = 0; k < N_LAYER; k++)
        for (size_t n = 0; n < sizeof k_names / sizeof k_names[0]; n++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", order[k], k_names[n]);
            assert_int_equal(cv_plan_add(p, name, 2, shape, &part, 1, &err), 0);
        }
}

static ds_dtype type_of(const cv_plan *p, int layer, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, what);
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return p->t[i].type;
    fail_msg("no tensor %s", name);
    return DS_F32;
}

static void check_order(const int *order) {
    cv_plan p;
    make_plan(&p, order);
    ds_quantize_opts o = {.threads = 1};
    assert_int_equal(ds_recipe_find("q4_k_m", &o.recipe), 0);
    cv_choose_types(&p, &o);
    for (int l = 0; l < N_LAYER; l++) {
        const ds_dtype want = more_bits(l) ? DS_Q6_K : DS_Q4_K;
        if (type_of(&p, l, "attn_v") != want || type_of(&p, l, "ffn_down") != want)
            fail_msg("layer %d: attn_v %s, ffn_down %s, want %s", l, ds_dtype_name(type_of(&p, l, "attn_v")),
                     ds_dtype_name(type_of(&p, l, "ffn_down")), ds_dtype_name(want));
        assert_int_equal(type_of(&p, l, "attn_q"), DS_Q4_K);
    }
    cv_plan_free(&p);
}

static void test_more_bits_layers_numeric_order(void **state) {
    (void)state;
    int order[N_LAYER];
    for (int l = 0; l < N_LAYER; l++) order[l] = l;
    check_order(order);
}

/* The order llama.cpp's and our GGUF readers see in many published files. */
static void test_more_bits_layers_string_order(void **state) {
    (void)state;
    static const int order[N_LAYER] = {0, 1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                                       2, 20, 21, 22, 23, 3,  4,  5,  6,  7,  8,  9};
    check_order(order);
}

static void test_more_bits_layers_reversed_order(void **state) {
    (void)state;
    int order[N_LAYER];
    for (int l = 0; l < N_LAYER; l++) order[l] = N_LAYER - 1 - l;
    check_order(order);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_bits_layers_numeric_order),
        cmocka_unit_test(test_more_bits_layers_string_order),
        cmocka_unit_test(test_more_bits_layers_reversed_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
