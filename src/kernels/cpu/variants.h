/* Internal to kernels/cpu: the per-variant row kernels behind ds_matmul. A row kernel computes
 * the dot products of one weight row with nx ≤ DS_NX_MAX activation rows; each activation row
 * gets its own accumulators updated in the same order as when nx == 1, so grouping rows never
 * changes a result. */
#ifndef DS_KERNELS_CPU_VARIANTS_H
#define DS_KERNELS_CPU_VARIANTS_H

#include "kernels/kernels.h"

#define DS_NX_MAX 4

typedef void (*ds_row_kernel)(const void *w, const float *const *x, int nx, int n, float *out);

/* Kernels for F32, F16, BF16 weights; NULL for types that go through dequantization. */
ds_row_kernel ds_row_kernel_scalar(ds_dtype t);
ds_row_kernel ds_row_kernel_avx2(ds_dtype t);

float ds_dot_f32_scalar(const float *a, const float *b, int n);
float ds_dot_f32_avx2(const float *a, const float *b, int n);

#endif
