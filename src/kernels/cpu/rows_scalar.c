/* Scalar reference row kernels: eight partial sums over the row, combined pairwise, then the
 * tail. Weights are converted element by element. */
#include <string.h>

#include "kernels/cpu/variants.h"

static inline float ld_f32(const void *w, int i) { return ((const float *)w)[i]; }
static inline float ld_f16(const void *w, int i) { return ds_f16_to_f32(((const uint16_t *)w)[i]); }
static inline float ld_bf16(const void *w, int i) { return ds_bf16_to_f32(((const uint16_t *)w)[i]); }

#define SCALAR_ROW_KERNEL(NAME, LOAD)                                                          \
    static void NAME(const void *w, const float *const *x, int nx, int n, float *out) {      \
        for (int r = 0; r < nx; r++) {                                                          \
            float acc[8] = {0};                                                                 \
            int i = 0;                                                                          \
            for (; i + 8 <= n; i += 8)                                                          \
                for (int k = 0; k < 8; k++) acc[k] += LOAD(w, i + k) * x[r][i + k];            \
            float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])); \
            for (; i < n; i++) s += LOAD(w, i) * x[r][i];                                       \
            out[r] = s;                                                                         \
        }                                                                                       \
    }

SCALAR_ROW_KERNEL(row_f32, ld_f32)
SCALAR_ROW_KERNEL(row_f16, ld_f16)
SCALAR_ROW_KERNEL(row_bf16, ld_bf16)

ds_row_kernel ds_row_kernel_scalar(ds_dtype t) {
    switch (t) {
    case DS_F32: return row_f32;
    case DS_F16: return row_f16;
    case DS_BF16: return row_bf16;
    default: return NULL;
    }
}

float ds_dot_f32_scalar(const float *a, const float *b, int n) {
    float out;
    row_f32(a, &b, 1, n, &out);
    return out;
}
