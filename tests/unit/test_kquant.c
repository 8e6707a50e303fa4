/* K-quant row kernels (Q4_K, Q5_K, Q6_K against Q8_K activations): the scalar kernel against
 * a double-precision dot of the dequantized weights and activations, the AVX2 and AVX-512
 * kernels against the scalar one, and batch invariance (a row's result is bit-identical alone
 * or inside any group of up to DS_NX_MAX rows). */
#include <cpuid.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/variants.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
/* uniform in [-1, 1) */
static float frand(void) { return (float)((next_u64() >> 11) * 0x1.0p-53) * 2.0f - 1.0f; }

/* ---- which variants this CPU runs ---- */

static int xcr0_has(unsigned bits) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & bits) == bits;
}

static int has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!fma || !f16c || !xcr0_has(0x6)) return 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((b >> 5) & 1);
}

static int has_avx512_vnni(void) {
    unsigned a, b, c, d;
    if (!has_avx2() || !xcr0_has(0xe6)) return 0; /* opmask and ZMM state saved by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    return f && bw && vl && vnni;
}

static int always(void) { return 1; }

typedef struct variant {
    const char *name;
    ds_qrow_kernel (*kernel_for)(ds_dtype);
    ds_kq_part_kernel (*part_kernel_for)(ds_dtype);
    int (*available)(void);
} variant;

static const variant k_variants[] = {
    {"scalar", ds_kquant_kernel_scalar, ds_kquant_part_kernel_scalar, always},
    {"avx2", ds_kquant_kernel_avx2, ds_kquant_part_kernel_avx2, has_avx2},
    {"avx512", ds_kquant_kernel_avx512, ds_kquant_part_kernel_avx512, has_avx512_vnni},
};
#define N_VARIANTS (int)(sizeof k_variants / sizeof k_variants[0])

/* ---- inputs ---- */

static size_t row_bytes(ds_dtype t, int n) { return (size_t)(n / 256) * ds_dtype_block_bytes(t); }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = ds_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random bytes (every bit pattern of q, scales and mins is valid) with sane f16 scales; with
 * `extreme`, every q, scale and min at its maximum instead, to provoke int16 saturation. */
static uint8_t *make_weights(ds_dtype t, int rows, int n, int extreme) {
    const size_t bb = ds_dtype_block_bytes(t), nb = (size_t)rows * (size_t)(n / 256);
    uint8_t *w = malloc(nb * bb);
    for (size_t i = 0; i < nb * bb; i++) w[i] = extreme ? 0xff : (uint8_t)next_u64();
    for (size_t k = 0; k < nb; k++) {
        uint8_t *b = w + k * bb;
        if (t == DS_Q6_K) {
            if (extreme) memset(b + 192, k % 2 ? 0x80 : 0x7f, 16); /* int8 scales −128 or 127 */
            put_f16(b + 208, 0.001f + 0.002f * fabsf(frand()));
        } else {
            put_f16(b, 0.001f + 0.002f * fabsf(frand()));
            put_f16(b + 2, 0.001f + 0.002f * fabsf(frand()));
        }
    }
    return w;
}

/* nx rows of n activations, quantized: each block gets its own magnitude; with `extreme`,
 * values of one sign per row so every qx is ±127. */
static ds_act_q8k *make_acts(int nx, int n, int extreme) {
    const int nb = n / 256;
    ds_act_q8k *xq = malloc(sizeof(ds_act_q8k) * (size_t)(nx * nb));
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < nx; r++) {
        for (int i = 0; i < n; i++) {
            const float mag = powf(10.0f, (float)((i / 256 + r) % 5) - 2.0f);
            x[i] = extreme ? (r % 2 ? -1.0f : 1.0f) : mag * frand();
        }
        ds_quantize_act_q8k(x, n, xq + (size_t)r * (size_t)nb);
    }
    free(x);
    return xq;
}

/* Σ w·x in double over the dequantized weights and activations; *abs_sum = Σ |w·x|. */
static double reference_dot(ds_dtype t, const uint8_t *w, const ds_act_q8k *x, int n, double *abs_sum) {
    float *wf = malloc(sizeof(float) * (size_t)n);
    assert_int_equal(ds_dequantize_row(t, w, wf, n), 0);
    double s = 0, a = 0;
    for (int i = 0; i < n; i++) {
        const double p = (double)wf[i] * ((double)x[i / 256].d * x[i / 256].qs[i % 256]);
        s += p;
        a += fabs(p);
    }
    free(wf);
    *abs_sum = a;
    return s;
}

#define ROWS 3
#define NX_TOTAL (DS_NX_MAX + 2) /* activation rows: groups start at several offsets */

/* One weight matrix against NX_TOTAL activation rows, every variant this CPU has. */
static void check_case(ds_dtype t, int n, int extreme) {
    const int nb = n / 256;
    const size_t rb = row_bytes(t, n);
    uint8_t *w = make_weights(t, ROWS, n, extreme);
    ds_act_q8k *xq = make_acts(NX_TOTAL, n, extreme);
    const void *rows[NX_TOTAL];
    for (int r = 0; r < NX_TOTAL; r++) rows[r] = xq + (size_t)r * (size_t)nb;

    for (int o = 0; o < ROWS; o++) {
        const uint8_t *wrow = w + (size_t)o * rb;
        double ref[NX_TOTAL], tol[NX_TOTAL];
        float scalar[NX_TOTAL];
        for (int r = 0; r < NX_TOTAL; r++) {
            ref[r] = reference_dot(t, wrow, rows[r], n, &tol[r]);
            tol[r] *= 1e-5;
            ds_kquant_kernel_scalar(t)(wrow, &rows[r], 1, n, &scalar[r]);
            if (fabs(scalar[r] - ref[r]) > tol[r])
                fail_msg("%s n=%d row %d act %d: scalar %.9g, reference %.9g (tolerance %.3g)", ds_dtype_name(t), n,
                         o, r, scalar[r], ref[r], tol[r]);
        }
        for (int v = 0; v < N_VARIANTS; v++) {
            if (!k_variants[v].available()) continue;
            const ds_qrow_kernel kernel = k_variants[v].kernel_for(t);
            assert_non_null(kernel);
            float alone[NX_TOTAL];
            for (int r = 0; r < NX_TOTAL; r++) {
                kernel(wrow, &rows[r], 1, n, &alone[r]);
                if (fabs(alone[r] - scalar[r]) > tol[r])
                    fail_msg("%s %s n=%d row %d act %d: %.9g, scalar %.9g (tolerance %.3g)", k_variants[v].name,
                             ds_dtype_name(t), n, o, r, alone[r], scalar[r], tol[r]);
            }
            /* the row in parts of `step` blocks (the last part shorter), carried from part to
             * part, gives every row's bits of the whole-row call */
            const ds_kq_part_kernel part = k_variants[v].part_kernel_for(t);
            assert_non_null(part);
            for (int step = 1; step < nb; step++) {
                const int nx = DS_NX_MAX < NX_TOTAL ? DS_NX_MAX : NX_TOTAL;
                float carry[DS_NX_MAX * DS_KQ_CARRY], pieced[DS_NX_MAX];
                for (int b0 = 0; b0 < nb; b0 += step) {
                    const int blocks = nb - b0 < step ? nb - b0 : step;
                    const void *at[DS_NX_MAX];
                    for (int r = 0; r < nx; r++) at[r] = (const ds_act_q8k *)rows[r] + b0;
                    part(wrow + (size_t)b0 * ds_dtype_block_bytes(t), at, nx, 256 * blocks, carry, b0 == 0,
                         b0 + blocks == nb, pieced);
                }
                for (int r = 0; r < nx; r++)
                    if (memcmp(&pieced[r], &alone[r], sizeof(float)) != 0)
                        fail_msg("%s %s n=%d row %d act %d: %.9g in parts of %d blocks, %.9g whole", k_variants[v].name,
                                 ds_dtype_name(t), n, o, r, pieced[r], step, alone[r]);
            }
            for (int nx = 2; nx <= DS_NX_MAX; nx++) {
                for (int first = 0; first + nx <= NX_TOTAL; first++) {
                    float grouped[DS_NX_MAX];
                    kernel(wrow, &rows[first], nx, n, grouped);
                    for (int i = 0; i < nx; i++)
                        if (memcmp(&grouped[i], &alone[first + i], sizeof(float)) != 0)
                            fail_msg("%s %s n=%d row %d act %d: %.9g in a group of %d, %.9g alone", k_variants[v].name,
                                     ds_dtype_name(t), n, o, first + i, grouped[i], nx, alone[first + i]);
                }
            }
        }
    }
    free(w);
    free(xq);
}

static void check_type(ds_dtype t) {
    for (int v = 1; v < N_VARIANTS; v++)
        if (!k_variants[v].available())
            print_message("skipping %s for %s: not supported by this CPU\n", k_variants[v].name, ds_dtype_name(t));
    const int sizes[] = {256, 512, 1280, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_case(t, sizes[i], 0);
    check_case(t, 1024, 1);
}

static void test_q4_k(void **state) { check_type(DS_Q4_K); }
static void test_q5_k(void **state) { check_type(DS_Q5_K); }
static void test_q6_k(void **state) { check_type(DS_Q6_K); }

/* Other weight types have no K-quant kernel. */
static void test_other_types(void **state) {
    const ds_dtype others[] = {DS_F32, DS_Q4_0, DS_Q8_0, DS_Q8_K};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        for (int v = 0; v < N_VARIANTS; v++) assert_null(k_variants[v].kernel_for(others[i]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_k),
        cmocka_unit_test(test_q5_k),
        cmocka_unit_test(test_q6_k),
        cmocka_unit_test(test_other_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
