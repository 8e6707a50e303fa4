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

#include "kernels/cpu/variants.h"
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
            if (t == DS_Q4_1 || t == DS_Q5_1) memcpy(b + k * bb + 2, &d, 2); /* minimum */
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
static const ds_dtype k_qtypes[] = {DS_Q8_0, DS_Q4_0, DS_Q4_1, DS_Q5_0, DS_Q5_1};
static const ds_cpu_level k_levels[] = {DS_CPU_SCALAR, DS_CPU_AVX2, DS_CPU_AVX512};

/* The per-block minimum of Q4_1 / Q5_1 (f16 at byte 2 of a block), 0 for the other formats. */
static double block_min(ds_dtype t, const uint8_t *wrow, int b) {
    if (t != DS_Q4_1 && t != DS_Q5_1) return 0;
    uint16_t h;
    memcpy(&h, wrow + (size_t)b * ds_dtype_block_bytes(t) + 2, 2);
    return ds_f16_to_f32(h);
}

/* How far the quantized-activation path may be from the exact product: each activation is off
 * by at most half a quantization step (max|x| / 254 over its block); the f16 block scale and
 * block sum add at most 2^-11 relative (the 1e-3 term, which also covers f32 rounding). */
static float act_quant_bound(const ds_tensor *w, int o, const float *x) {
    const int cols = (int)w->shape[1];
    const uint8_t *wrow = (const uint8_t *)w->data + (size_t)o * (w->nbytes / (size_t)w->shape[0]);
    float *row = malloc(sizeof(float) * (size_t)cols);
    ds_dequantize_row(w->type, wrow, row, cols);
    double bound = 0, mag = 0;
    for (int b = 0; b < cols / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        for (int i = 0; i < 32; i++) {
            bound += fabs(row[32 * b + i]) * amax / 254.0;
            mag += fabs(row[32 * b + i] * x[32 * b + i]) + fabs(block_min(w->type, wrow, b) * x[32 * b + i]);
        }
    }
    free(row);
    return (float)(1.01 * bound + 1e-3 * mag + 1e-6);
}

static int quantizes_activations(ds_dtype t) {
    return ds_act_mode_get() == DS_ACT_QUANTIZED && ds_act_kind_for(t) == DS_ACT_Q8;
}

static void check_variant(ds_cpu_level level, ds_act_mode mode) {
    if (ds_cpu_level_set(level) != 0) {
        print_message("skipping %s: not supported by this CPU\n", ds_cpu_level_name(level));
        return;
    }
    ds_act_mode_set(mode);
    ds_pool *p1 = ds_pool_create(1), *p3 = ds_pool_create(3);
    /* odd sizes: tails, partial block groups, a full and a partial group of activation rows */
    const int rows = 37, cols = 320, n_rows = 19;
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
            float tol = quantizes_activations(w.type) ? act_quant_bound(&w, i % rows, x + (size_t)(i / rows) * cols)
                                                      : 1e-4f * (1.0f + fabsf(ref[i]));
            if (!(fabsf(y[i] - ref[i]) <= tol))
                fail_msg("%s %s: y[%d] = %g, reference %g (tolerance %g)", ds_cpu_level_name(level),
                         ds_dtype_name(w.type), i, y[i], ref[i], tol);
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
    ds_act_mode_set(DS_ACT_QUANTIZED);
}

/* Enough long activation rows that ds_matmul splits them into several chunks (X_CHUNK_BYTES in
 * matmul.c): rows are still bit-identical alone and in the batch, with 1 or 3 threads. */
static void test_matmul_chunked_batch(void **state) {
    const ds_dtype types[] = {DS_F32, DS_Q4_0};
    const int rows = 19, cols = 4096, n_rows = 150;
    ds_pool *p1 = ds_pool_create(1), *p3 = ds_pool_create(3);
    for (size_t ti = 0; ti < 2; ti++) {
        void *buf;
        ds_tensor w = make_weight(types[ti], rows, cols, &buf);
        float *x = malloc(sizeof(float) * n_rows * cols), *y = malloc(sizeof(float) * n_rows * rows),
              *y3 = malloc(sizeof(float) * n_rows * rows), one[19];
        fill(x, (size_t)n_rows * cols);
        ds_matmul(p1, &w, x, n_rows, y, rows);
        ds_matmul(p3, &w, x, n_rows, y3, rows);
        assert_memory_equal(y3, y, sizeof(float) * n_rows * rows);
        for (int r = 0; r < n_rows; r += 37) {
            ds_matmul(p1, &w, x + (size_t)r * cols, 1, one, rows);
            assert_memory_equal(one, y + (size_t)r * rows, sizeof one);
        }
        free(buf), free(x), free(y), free(y3);
    }
    ds_pool_destroy(p1);
    ds_pool_destroy(p3);
}

static void test_matmul_scalar(void **state) { check_variant(DS_CPU_SCALAR, DS_ACT_QUANTIZED); }
static void test_matmul_avx2(void **state) { check_variant(DS_CPU_AVX2, DS_ACT_QUANTIZED); }
static void test_matmul_avx512(void **state) { check_variant(DS_CPU_AVX512, DS_ACT_QUANTIZED); }
static void test_matmul_exact_scalar(void **state) { check_variant(DS_CPU_SCALAR, DS_ACT_EXACT); }
static void test_matmul_exact_avx2(void **state) { check_variant(DS_CPU_AVX2, DS_ACT_EXACT); }
static void test_matmul_exact_avx512(void **state) { check_variant(DS_CPU_AVX512, DS_ACT_EXACT); }

/* The float tile kernels of every level, called directly: each (weight row, activation row)
 * result is within f32 rounding of a double-precision dot, and bit-identical whether computed
 * alone or inside any block of rows, at any offset (full tiles, edge tiles, decode's single
 * activation row), for lengths with and without a partial vector at the end. */
static void test_gemm_kernels(void **state) {
    const ds_dtype types[] = {DS_F32, DS_F16, DS_BF16};
    const int lengths[] = {5, 16, 40, 333};
    enum { NW = 11, NX = 15 };
    for (size_t lv = 0; lv < sizeof k_levels / sizeof k_levels[0]; lv++) {
        if (ds_cpu_level_set(k_levels[lv]) != 0) continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const ds_gemm_kernel k = k_levels[lv] == DS_CPU_SCALAR ? ds_gemm_kernel_scalar(types[ti])
                                     : k_levels[lv] == DS_CPU_AVX2  ? ds_gemm_kernel_avx2(types[ti])
                                                                    : ds_gemm_kernel_avx512(types[ti]);
            assert_non_null(k);
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                const int n = lengths[li];
                void *buf;
                ds_tensor w = make_weight(types[ti], NW, n, &buf);
                const size_t rb = w.nbytes / NW;
                float *x = malloc(sizeof(float) * NX * (size_t)n), ref[NX * NW], all[NX * NW], part[NX * NW];
                fill(x, (size_t)NX * n);
                reference(&w, x, NX, ref);
                k(buf, rb, NW, x, (size_t)n, NX, n, all, NW);
                for (int i = 0; i < NX * NW; i++)
                    if (!(fabsf(all[i] - ref[i]) <= 1e-5f * (float)n))
                        fail_msg("%s %s n=%d: y[%d] = %g, reference %g", ds_cpu_level_name(k_levels[lv]),
                                 ds_dtype_name(types[ti]), n, i, all[i], ref[i]);
                /* every block [o0, o0 + nw) × [r0, r0 + nx) gives the same bits */
                for (int o0 = 0; o0 < NW; o0 += 3)
                    for (int nw = 1; o0 + nw <= NW; nw += 2)
                        for (int r0 = 0; r0 < NX; r0 += 4)
                            for (int nx = 1; r0 + nx <= NX; nx++) {
                                k((const uint8_t *)buf + (size_t)o0 * rb, rb, nw, x + (size_t)r0 * n, (size_t)n, nx, n,
                                  part, NW);
                                for (int r = 0; r < nx; r++)
                                    if (memcmp(part + (size_t)r * NW, all + (size_t)(r0 + r) * NW + o0,
                                               sizeof(float) * (size_t)nw))
                                        fail_msg("%s %s n=%d: block rows %d+%d x %d+%d differs at row %d",
                                                 ds_cpu_level_name(k_levels[lv]), ds_dtype_name(types[ti]), n, o0, nw,
                                                 r0, nx, r);
                            }
                free(buf), free(x);
            }
        }
    }
}

/* ds_matmul on float weights with edge tiles everywhere (output rows not a multiple of any
 * tile width, an odd inner length, 19 activation rows): the first b rows computed as a batch of
 * b, for every b in 1..19, are bit-identical to the same rows inside the batch of 19, with 1 or
 * 3 threads, on every level. */
static void test_matmul_float_batches(void **state) {
    const ds_dtype types[] = {DS_F32, DS_F16, DS_BF16};
    const int rows = 37, cols = 333, n_rows = 19;
    ds_pool *p1 = ds_pool_create(1), *p3 = ds_pool_create(3);
    for (size_t lv = 0; lv < sizeof k_levels / sizeof k_levels[0]; lv++) {
        if (ds_cpu_level_set(k_levels[lv]) != 0) continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            void *buf;
            ds_tensor w = make_weight(types[ti], rows, cols, &buf);
            float *x = malloc(sizeof(float) * n_rows * cols), *all = malloc(sizeof(float) * n_rows * rows),
                  *part = malloc(sizeof(float) * n_rows * rows);
            fill(x, (size_t)n_rows * cols);
            ds_matmul(p1, &w, x, n_rows, all, rows);
            for (int b = 1; b <= n_rows; b++) {
                ds_matmul(b % 2 ? p1 : p3, &w, x, b, part, rows);
                if (memcmp(part, all, sizeof(float) * (size_t)b * rows))
                    fail_msg("%s %s: a batch of %d differs from the batch of %d", ds_cpu_level_name(k_levels[lv]),
                             ds_dtype_name(types[ti]), b, n_rows);
            }
            /* and a row on its own, at an offset, with 3 threads */
            ds_matmul(p3, &w, x + (size_t)(n_rows - 1) * cols, 1, part, rows);
            assert_memory_equal(part, all + (size_t)(n_rows - 1) * rows, sizeof(float) * rows);
            free(buf), free(x), free(all), free(part);
        }
    }
    ds_pool_destroy(p1);
    ds_pool_destroy(p3);
}

/* Activation element i of a quantized row, dequantized. */
static double act_q8_value(const ds_act_q8 *a, int i) {
    const int b = i / 32, p = b % 4, j = i % 32;
    const uint8_t u = a[b / 4].u[(j < 16 ? 0 : 64) + 16 * p + j % 16];
    return (double)a[b / 4].d[4 * p] * ((int)u - 128);
}

/* Quantized-activation row kernels: the scalar one against a double-precision dot of the
 * dequantized weights and dequantized activations, each SIMD one against the scalar one, for
 * lengths with and without a partial group of blocks and every group size nx. The minimum of
 * Q4_1 / Q5_1 meets the activations' stored block sum s (f16, like llama.cpp's Q8_1), so the
 * exact value is sum((w - m) * x) + m * s over the blocks. */
static void test_qrow_kernels(void **state) {
    const int lengths[] = {32, 96, 128, 320, 1056};
    const int rows = 5, nx_max = DS_QNX_MAX;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int n = lengths[li];
        float *x = malloc(sizeof(float) * (size_t)n * nx_max), *deq = malloc(sizeof(float) * (size_t)n);
        fill(x, (size_t)n * nx_max);
        x[n / 2] = 40.0f; /* an outlier, as real activations have */
        ds_act_q8 *xq = malloc(sizeof(ds_act_q8) * (size_t)ds_act_q8_groups(n) * nx_max);
        const void *xs[DS_QNX_MAX];
        for (int r = 0; r < nx_max; r++) {
            xs[r] = xq + (size_t)r * ds_act_q8_groups(n);
            ds_quantize_act_q8(x + (size_t)r * n, n, (ds_act_q8 *)xs[r]);
        }
        for (size_t ti = 0; ti < sizeof k_qtypes / sizeof k_qtypes[0]; ti++) {
            void *buf;
            ds_tensor w = make_weight(k_qtypes[ti], rows, n, &buf);
            const size_t rb = w.nbytes / (size_t)rows;
            for (int o = 0; o < rows; o++) {
                const uint8_t *wrow = (const uint8_t *)buf + (size_t)o * rb;
                ds_dequantize_row(w.type, wrow, deq, n);
                double exact[DS_QNX_MAX], mag[DS_QNX_MAX];
                for (int r = 0; r < nx_max; r++) {
                    exact[r] = mag[r] = 0;
                    const ds_act_q8 *xa = xs[r];
                    for (int i = 0; i < n; i++) {
                        const double m = block_min(w.type, wrow, i / 32), t = deq[i] * act_q8_value(xa, i);
                        exact[r] += (deq[i] - m) * act_q8_value(xa, i), mag[r] += fabs(t);
                        if (i % 32 == 0) exact[r] += m * xa[i / 128].s[4 * (i / 32 % 4)];
                    }
                }
                float ref[DS_QNX_MAX];
                ds_qrow_kernel_scalar(w.type)(wrow, xs, nx_max, n, ref);
                for (int r = 0; r < nx_max; r++)
                    if (!(fabs(ref[r] - exact[r]) <= 1e-5 * mag[r] + 1e-9))
                        fail_msg("scalar %s n=%d: %g, exact %g", ds_dtype_name(w.type), n, ref[r], exact[r]);
                for (size_t lv = 1; lv < sizeof k_levels / sizeof k_levels[0]; lv++) {
                    if (ds_cpu_level_set(k_levels[lv]) != 0) continue;
                    ds_qrow_kernel k = k_levels[lv] == DS_CPU_AVX2 ? ds_qrow_kernel_avx2(w.type)
                                                                   : ds_qrow_kernel_avx512(w.type);
                    for (int nx = 1; nx <= nx_max; nx++) {
                        float got[DS_QNX_MAX];
                        k(wrow, xs, nx, n, got);
                        for (int r = 0; r < nx; r++)
                            if (!(fabs(got[r] - ref[r]) <= 1e-5 * mag[r] + 1e-9))
                                fail_msg("%s %s n=%d nx=%d: %g, scalar %g", ds_cpu_level_name(k_levels[lv]),
                                         ds_dtype_name(w.type), n, nx, got[r], ref[r]);
                    }
                }
            }
            free(buf);
        }
        free(x), free(deq), free(xq);
    }
}

/* The quantizer's rounding: scale max|x| / 127 (kept at f16 precision), nearest value, ties to
 * even, zeros kept. */
static void test_quantize_act_q8(void **state) {
    float x[96] = {0};
    x[0] = 127.0f, x[1] = -63.5f, x[2] = 0.5f, x[3] = 1.5f, x[17] = -127.0f;
    x[64] = 1.0f, x[65] = 1.0f / 127.0f;
    ds_act_q8 a[1];
    ds_quantize_act_q8(x, 96, a);
    assert_float_equal(a->d[0], 1.0f, 0);
    assert_int_equal(a->u[0], 255);
    assert_int_equal(a->u[1], 128 - 64); /* -63.5 → -64 (even) */
    assert_int_equal(a->u[2], 128);      /* 0.5 → 0 */
    assert_int_equal(a->u[3], 130);      /* 1.5 → 2 */
    assert_int_equal(a->u[64 + 1], 1);   /* element 17 sits in the high half */
    assert_float_equal(a->s[0], 127.0f - 64 + 2 - 127, 0);
    assert_float_equal(a->d[4], 0.0f, 0); /* an all-zero block */
    assert_int_equal(a->u[16], 128);
    const float d2 = ds_f16_to_f32(ds_f32_to_f16(1.0f / 127.0f));
    assert_true(d2 != 1.0f / 127.0f);
    assert_float_equal(a->d[8], d2, 0);
    assert_int_equal(a->u[32], 255);
    assert_int_equal(a->u[33], 129);
    assert_float_equal(a->s[8], ds_f16_to_f32(ds_f32_to_f16(128.0f / 127.0f)), 0);
    assert_float_equal(a->d[12], 0.0f, 0); /* a block past the row */
    assert_int_equal(a->u[48], 128);
}

/* The AVX-512 quantizer writes the scalar one's bytes, ties and partial groups included. */
static void test_quantize_act_q8_avx512(void **state) {
    if (ds_cpu_level_set(DS_CPU_AVX512) != 0) {
        print_message("skipping: no AVX-512\n");
        return;
    }
    const int n = 352; /* two full groups and a partial one */
    float x[352];
    fill(x, n);
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) + 0.5f; /* ties at d = 1 after scaling */
    x[0] = -127.0f;
    for (int i = 64; i < 96; i++) x[i] = 0.0f;
    ds_act_q8 a[3], b[3];
    memset(a, 0xa5, sizeof a), memset(b, 0x5a, sizeof b);
    ds_quantize_act_q8(x, n, a);
    ds_quantize_act_q8_avx512(x, n, b);
    assert_memory_equal(a, b, sizeof a);
}

/* The AVX-512 K-quant activation quantizer gives the scalar one's values: ties, an all-zero
 * block and the scaled 16-wide sums included. */
static void test_quantize_act_q8k_avx512(void **state) {
    if (ds_cpu_level_set(DS_CPU_AVX512) != 0) {
        print_message("skipping: no AVX-512\n");
        return;
    }
    const int n = 768;
    float x[768];
    fill(x, n);
    for (int i = 0; i < 256; i++) x[i] = (float)(i % 64 - 32) + 0.5f; /* ties: max 31.5 */
    x[7] = -127.0f;                                                     /* scale 1: every x.5 ties */
    for (int i = 256; i < 512; i++) x[i] = 0.0f;
    ds_act_q8k a[3], b[3];
    ds_quantize_act_q8k(x, n, a);
    ds_quantize_act_q8k_avx512(x, n, b);
    for (int k = 0; k < 3; k++) {
        assert_memory_equal(a[k].qs, b[k].qs, sizeof a[k].qs);
        assert_memory_equal(a[k].dsums, b[k].dsums, sizeof a[k].dsums);
        assert_memory_equal(&a[k].d, &b[k].d, sizeof a[k].d);
    }
    assert_int_equal(a[0].qs[0], -32); /* -31.5 → -32, ties to even */
    assert_int_equal(a[0].qs[1], -30); /* -30.5 → -30 */
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += a[0].qs[i];
    assert_float_equal(a[0].dsums[0], a[0].d * s, 0);
    assert_float_equal(a[1].d, 0.0f, 0);
}

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
        cmocka_unit_test(test_matmul_avx512),
        cmocka_unit_test(test_matmul_exact_scalar),
        cmocka_unit_test(test_matmul_exact_avx2),
        cmocka_unit_test(test_matmul_exact_avx512),
        cmocka_unit_test(test_matmul_chunked_batch),
        cmocka_unit_test(test_gemm_kernels),
        cmocka_unit_test(test_matmul_float_batches),
        cmocka_unit_test(test_qrow_kernels),
        cmocka_unit_test(test_quantize_act_q8),
        cmocka_unit_test(test_quantize_act_q8_avx512),
        cmocka_unit_test(test_quantize_act_q8k_avx512),
        cmocka_unit_test(test_f16_bf16_roundtrip),
        cmocka_unit_test(test_rmsnorm_swiglu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
