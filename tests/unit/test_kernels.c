/* Kernel variants against the scalar reference, and the invariances the forward pass relies
 * on: a row's result must not depend on the batch around it or on the thread count. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1.0p-53) * 2.0f - 1.0f;
}

/* Builds a [rows, cols] weight of type t from random f32 values (block types get random
 * bytes with a sane f16 scale, which is all a dot-product test needs). */
static ds_tensor make_weight(ds_dtype t, int rows, int cols, void **buf) {
    size_t nbytes;
    assert_int_equal(ds_dtype_bytes_for(t, (int64_t)rows * cols, &nbytes, "w", NULL), 0);
    uint8_t *b = malloc(nbytes);
    if (t == DS_F32) {
        for (int i = 0; i < rows * cols; i++) ((float *)b)[i] = frand();
    } else if (t == DS_F16) {
        for (int i = 0; i < rows * cols; i++) ((uint16_t *)b)[i] = ds_f32_to_f16(frand());
    } else if (t == DS_BF16) {
        for (int i = 0; i < rows * cols; i++) ((uint16_t *)b)[i] = ds_f32_to_bf16(frand());
    } else {
        for (size_t i = 0; i < nbytes; i++) b[i] = (uint8_t)(frand() * 127 + 128);
        size_t bb = ds_dtype_block_bytes(t), nb = nbytes / bb;
        for (size_t k = 0; k < nb; k++) {
            uint16_t d = ds_f32_to_f16(0.01f + 0.01f * fabsf(frand()));
            memcpy(b + k * bb, &d, 2);
            if (t == DS_Q4_1) memcpy(b + k * bb + 2, &d, 2);
        }
    }
    *buf = b;
    return (ds_tensor){.name = "w", .type = t, .ndim = 2, .shape = {rows, cols}, .data = b, .nbytes = nbytes};
}

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = frand();
}

static void reference(const ds_tensor *w, const float *x, int n_rows, float *y) {
    int rows = (int)w->shape[0], cols = (int)w->shape[1];
    float *row = malloc(sizeof(float) * (size_t)cols);
    size_t rb = w->nbytes / (size_t)rows;
    for (int o = 0; o < rows; o++) {
        ds_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)o * rb, row, cols);
        for (int r = 0; r < n_rows; r++) {
            double s = 0;
            for (int i = 0; i < cols; i++) s += (double)row[i] * x[(size_t)r * cols + i];
            y[(size_t)r * rows + o] = (float)s;
        }
    }
    free(row);
}

static const ds_dtype k_types[] = {DS_F32, DS_F16, DS_BF16, DS_Q8_0, DS_Q4_0, DS_Q4_1, DS_Q5_0, DS_Q5_1};

static void check_variant(ds_cpu_level level) {
    if (ds_cpu_level_set(level) != 0) {
        print_message("skipping %s: not supported by this CPU\n", ds_cpu_level_name(level));
        return;
    }
    ds_pool *p1 = ds_pool_create(1), *p3 = ds_pool_create(3);
    const int rows = 37, cols = 320, n_rows = 7; /* odd sizes: tails and partial groups */
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        void *buf;
        ds_tensor w = make_weight(k_types[ti], rows, cols, &buf);
        float *x = malloc(sizeof(float) * n_rows * cols), *y = malloc(sizeof(float) * n_rows * rows),
              *ref = malloc(sizeof(float) * n_rows * rows), *one = malloc(sizeof(float) * rows),
              *y3 = malloc(sizeof(float) * n_rows * rows);
        fill(x, (size_t)n_rows * cols);
        reference(&w, x, n_rows, ref);
        ds_matmul(p1, &w, x, n_rows, y, rows);
        for (int i = 0; i < n_rows * rows; i++) {
            float tol = 1e-4f * (1.0f + fabsf(ref[i]));
            if (fabsf(y[i] - ref[i]) > tol)
                fail_msg("%s %s: y[%d] = %g, reference %g", ds_cpu_level_name(level), ds_dtype_name(w.type), i, y[i], ref[i]);
        }
        /* batch invariance: each row alone gives bit-identical results */
        for (int r = 0; r < n_rows; r++) {
            ds_matmul(p1, &w, x + (size_t)r * cols, 1, one, rows);
            assert_memory_equal(one, y + (size_t)r * rows, sizeof(float) * rows);
        }
        /* thread invariance */
        ds_matmul(p3, &w, x, n_rows, y3, rows);
        assert_memory_equal(y3, y, sizeof(float) * n_rows * rows);
        free(buf), free(x), free(y), free(ref), free(one), free(y3);
    }
    ds_pool_destroy(p1);
    ds_pool_destroy(p3);
}

static void test_matmul_scalar(void **state) { check_variant(DS_CPU_SCALAR); }
static void test_matmul_avx2(void **state) { check_variant(DS_CPU_AVX2); }

static void test_f16_bf16_roundtrip(void **state) {
    const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.33325195f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        assert_float_equal(ds_f16_to_f32(ds_f32_to_f16(vals[i])), vals[i], 0);
    }
    assert_int_equal(ds_f32_to_bf16(1.0f), 0x3f80);
    assert_float_equal(ds_bf16_to_f32(0xc020), -2.5f, 0);
    /* round to nearest even: 1 + 2^-8 is halfway between two bf16 values */
    assert_int_equal(ds_f32_to_bf16(1.00390625f), 0x3f80);
    assert_float_equal(ds_fp8_e4m3_to_f32(0x7e), 448.0f, 0);
    assert_float_equal(ds_fp8_e4m3_to_f32(0x01), 0.001953125f, 0);
    assert_true(isnan(ds_fp8_e4m3_to_f32(0x7f)));
}

static void test_rmsnorm_swiglu(void **state) {
    float x[4] = {1, 2, 3, 4}, g[4] = {1, 1, 2, 0.5f}, out[4];
    ds_rmsnorm(out, x, g, 4, 0.0f);
    float inv = 1.0f / sqrtf(7.5f);
    assert_float_equal(out[2], 6 * inv, 1e-6);
    float gate[2] = {0.0f, 2.0f}, up[2] = {5.0f, 3.0f};
    ds_swiglu(gate, up, 2);
    assert_float_equal(gate[0], 0.0f, 0);
    assert_float_equal(gate[1], 2.0f / (1.0f + expf(-2.0f)) * 3.0f, 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_scalar),
        cmocka_unit_test(test_matmul_avx2),
        cmocka_unit_test(test_f16_bf16_roundtrip),
        cmocka_unit_test(test_rmsnorm_swiglu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
