/* Internal to kernels/cpu: the per-variant row kernels behind ds_matmul. A row kernel computes
 * the dot products of one weight row with nx ≤ DS_NX_MAX activation rows; each activation row
 * gets its own accumulators updated in the same order as when nx == 1, so grouping rows never
 * changes a result.
 *
 * Two kinds of row kernel exist:
 *  - ds_row_kernel: f32 activations (F32/F16/BF16 weights, and the exact path for every type);
 *  - ds_qrow_kernel: activations quantized to 8-bit blocks (ds_act_q8 for the 32-element weight
 *    formats, ds_act_q8k for the K-quants), so the inner loop is an integer dot product, as in
 *    llama.cpp. Activation rows are quantized once per matmul, each row on its own, which keeps
 *    the result of a row independent of the batch. */
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

/* ---- quantized activations ---- */

/* 32 activations: x[i] ≈ d * qs[i]; s = d * (sum of qs), which the formats with an offset
 * (Q4_0's −8, Q4_1/Q5_1's min) need. */
typedef struct ds_act_q8 {
    float d, s;
    int8_t qs[32];
} ds_act_q8;

/* 256 activations: x[i] ≈ d * qs[i]; bsums[j] = sum of qs[16j .. 16j+16), which the K-quants'
 * sub-block minimums and Q6_K's −32 offset need. */
typedef struct ds_act_q8k {
    float d;
    int16_t bsums[16];
    int8_t qs[256];
} ds_act_q8k;

typedef enum ds_act_kind { DS_ACT_F32, DS_ACT_Q8, DS_ACT_Q8K } ds_act_kind;

/* The activation format a weight type's quantized kernels take (DS_ACT_F32 for float types). */
ds_act_kind ds_act_kind_for(ds_dtype t);

/* Quantize one row of n activations (n a multiple of 32, resp. 256): scale = max|x| / 127,
 * values rounded to nearest, ties to even. Shared by every variant, so all variants see the
 * same bytes. */
void ds_quantize_act_q8(const float *x, int n, ds_act_q8 *out);
void ds_quantize_act_q8k(const float *x, int n, ds_act_q8k *out);

/* xq[r] points at row r's blocks (ds_act_q8 or ds_act_q8k as ds_act_kind_for says); n is the
 * row length in elements. */
typedef void (*ds_qrow_kernel)(const void *w, const void *const *xq, int nx, int n, float *out);

/* Quantized-activation kernels for the 32-element formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)... */
ds_qrow_kernel ds_qrow_kernel_scalar(ds_dtype t);
ds_qrow_kernel ds_qrow_kernel_avx2(ds_dtype t);
ds_qrow_kernel ds_qrow_kernel_avx512(ds_dtype t);
/* ...and for the K-quants (Q4_K, Q5_K, Q6_K); NULL for any other type. */
ds_qrow_kernel ds_kquant_kernel_scalar(ds_dtype t);
ds_qrow_kernel ds_kquant_kernel_avx2(ds_dtype t);
ds_qrow_kernel ds_kquant_kernel_avx512(ds_dtype t);

#endif
