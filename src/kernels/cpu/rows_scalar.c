/* Scalar reference kernels: every (weight row, activation row) pair is one dot product with
 * eight partial sums over the row, combined pairwise, then the tail. Weights are converted
 * element by element. */
#include <string.h>

#include "kernels/cpu/variants.h"

static inline float ld_f32(const uint8_t *w, int i) { return ((const float *)w)[i]; }
static inline float ld_f16(const uint8_t *w, int i) { return ds_f16_to_f32(((const uint16_t *)w)[i]); }
static inline float ld_bf16(const uint8_t *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

/* The dot product of weight row w with activation row x. */
#define SCALAR_DOT(NAME, LOAD)                                                                 \
    static float NAME##_dot(const uint8_t *w, const float *x, int n) {                         \
        float acc[8] = {0};                                                                     \
        int i = 0;                                                                              \
        for (; i + 8 <= n; i += 8)                                                              \
            for (int k = 0; k < 8; k++) acc[k] += LOAD(w, i + k) * x[i + k];                   \
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
        for (; i < n; i++) s += LOAD(w, i) * x[i];                                              \
        return s;                                                                               \
    }                                                                                           \
    static void NAME(const void *w, size_t w_row_bytes, int n_w, const float *x, size_t ldx,   \
                     int n_x, int n, float *y, size_t ldy) {                                    \
        for (int r = 0; r < n_x; r++)                                                           \
            for (int o = 0; o < n_w; o++)                                                       \
                y[(size_t)r * ldy + o] = NAME##_dot((const uint8_t *)w + (size_t)o * w_row_bytes, x + (size_t)r * ldx, n); \
    }

SCALAR_DOT(gemm_f32, ld_f32)
SCALAR_DOT(gemm_f16, ld_f16)
SCALAR_DOT(gemm_bf16, ld_bf16)

ds_gemm_kernel ds_gemm_kernel_scalar(ds_dtype t) {
    switch (t) {
    case DS_F32: return gemm_f32;
    case DS_F16: return gemm_f16;
    case DS_BF16: return gemm_bf16;
    default: return NULL;
    }
}

float ds_dot_f32_scalar(const float *a, const float *b, int n) { return gemm_f32_dot((const uint8_t *)a, b, n); }
