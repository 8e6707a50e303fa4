/* Internal to kernels/cpu: the per-variant kernels behind ds_matmul. Each computes dot products
 * of weight rows with activation rows such that the value for one (weight row, activation row)
 * pair is the same sequence of float operations whatever else the call computes, so grouping
 * rows never changes a result.
 *
 * Two kinds of kernel exist:
 *  - ds_gemm_kernel: f32 activations (F32/F16/BF16 weights, and the exact path for every type),
 *    any number of weight and activation rows per call, computed in register tiles;
 *  - ds_qrow_kernel: one weight row against nx activation rows quantized to 8-bit blocks
 *    (ds_act_q8 for the 32-element weight formats, ds_act_q8k for the K-quants), so the inner
 *    loop is an integer dot product, as in llama.cpp. Activation rows are quantized once per
 *    matmul, each row on its own, which keeps the result of a row independent of the batch. */
#ifndef DS_KERNELS_CPU_VARIANTS_H
#define DS_KERNELS_CPU_VARIANTS_H

#include <stddef.h>

#include "kernels/kernels.h"

/* y[r·ldy + o] = Σ_{i<n} w_o[i]·x[r·ldx + i] for o < n_w, r < n_x, where weight row o starts
 * at w + o·w_row_bytes. */
typedef void (*ds_gemm_kernel)(const void *w, size_t w_row_bytes, int n_w, const float *x, size_t ldx, int n_x,
                               int n, float *y, size_t ldy);

/* Kernels for F32, F16, BF16 weights; NULL for types that go through dequantization. */
ds_gemm_kernel ds_gemm_kernel_scalar(ds_dtype t);
ds_gemm_kernel ds_gemm_kernel_avx2(ds_dtype t);
ds_gemm_kernel ds_gemm_kernel_avx512(ds_dtype t);

/* Activation rows a ds_gemm_kernel call should get at a time (all but the last chunk): a
 * multiple of every variant's tile height, so no chunk ends in a partial tile. */
#define DS_GEMM_X_GROUP 12

float ds_dot_f32_scalar(const float *a, const float *b, int n);
float ds_dot_f32_avx2(const float *a, const float *b, int n);
float ds_dot_f32_avx512(const float *a, const float *b, int n);

/* ---- quantized activations ---- */

/* 128 activations, four 32-element blocks p = 0..3, laid out so one 64-byte register holds
 * 16 elements of every block, block p in 128-bit lane p:
 *   u[16p + i]      = q[32p + i] + 128        (i < 16)
 *   u[64 + 16p + i] = q[32p + 16 + i] + 128
 *   d[4p .. 4p+3]   = block p's scale (once per 32-bit lane of that block)
 *   s[4p] = (max|x| / 127) * (sum of block p's q), s[4p+1 .. 4p+3] = 0
 * where x ≈ d_p * q, q in [-127, 127]; d and s are rounded to f16 (llama.cpp's Q8_0 / Q8_1
 * store them so) and held as f32. The integer dot products (vpdpbusd, pmaddubsw) multiply
 * unsigned by signed bytes: storing q + 128 makes the activations the unsigned operand, so the
 * weights stay signed and the offset's contribution, 128 * (sum of a weight block), depends on
 * the weight block alone and is computed once for all activation rows. Every 32-bit lane of a
 * product then holds a partial dot of one block, which the float scales multiply lane-wise.
 * s serves the formats with a per-block minimum (Q4_1, Q5_1). A row of n elements takes
 * ds_act_q8_groups(n) of these; blocks past n have u = 128, d = s = 0. */
typedef struct ds_act_q8 {
    uint8_t u[128];
    float d[16];
    float s[16];
} ds_act_q8;

#define DS_ACT_Q8_GROUP 128
static inline int ds_act_q8_groups(int n) { return (n + DS_ACT_Q8_GROUP - 1) / DS_ACT_Q8_GROUP; }

/* 256 activations, x[i] ≈ d * qs[i], with dsums[j] = d * (sum of qs[16j .. 16j+16)): the
 * K-quants' sub-block minimums and Q6_K's −32 offset are constant over 16-wide runs, so their
 * share of a block's dot product is a 16-lane float dot with dsums, one FMA per AVX-512 row,
 * where integer bsums would cost a multiply, two conversions and a scale per row and block.
 * qs comes first and a block is whole cache lines (384 bytes), so the kernels' 64-byte loads
 * of qs never straddle two lines. */
typedef struct ds_act_q8k {
    _Alignas(64) int8_t qs[256];
    float dsums[16];
    float d;
} ds_act_q8k;

typedef enum ds_act_kind { DS_ACT_F32, DS_ACT_Q8, DS_ACT_Q8K } ds_act_kind;

/* The activation format a weight type's quantized kernels take (DS_ACT_F32 for float types). */
ds_act_kind ds_act_kind_for(ds_dtype t);

/* Quantize one row of n activations (n a multiple of 32, resp. 256) block by block: scale =
 * max|x| / 127, values rounded to nearest, ties to even. Shared by every variant, so all
 * variants see the same bytes. */
void ds_quantize_act_q8(const float *x, int n, ds_act_q8 *out);
/* The same bytes as ds_quantize_act_q8, faster; needs the AVX-512 level. */
void ds_quantize_act_q8_avx512(const float *x, int n, ds_act_q8 *out);
void ds_quantize_act_q8k(const float *x, int n, ds_act_q8k *out);
/* The same values as ds_quantize_act_q8k (padding aside), faster; needs the AVX-512 level. */
void ds_quantize_act_q8k_avx512(const float *x, int n, ds_act_q8k *out);

/* xq[r] points at row r's blocks (ds_act_q8 or ds_act_q8k as ds_act_kind_for says); n is the
 * row length in elements. */
/* The 32-element formats' kernels below take nx ≤ DS_QNX_MAX rows, the K-quant kernels
 * nx ≤ DS_NX_MAX: decoding a weight group costs about as much as its integer dots with two
 * activation rows, so more rows per decode pay (measured on AVX-512: 4 → 8 rows gave 1.5-2x,
 * 8 → 16 another 5-15 %). */
#define DS_QNX_MAX 16
#define DS_NX_MAX 8
typedef void (*ds_qrow_kernel)(const void *w, const void *const *xq, int nx, int n, float *out);

/* A K-quant row in pieces: `carry` holds each activation row's partial accumulator between the
 * calls for one weight row (DS_KQ_CARRY floats per activation row); `first` starts it from zero,
 * `last` reduces it into out. The pieces are block-aligned parts of the row, in order, and give
 * the same bits as one ds_qrow_kernel call over the whole row, so matmul may cut rows where it
 * likes without changing a result. */
#define DS_KQ_CARRY 16
typedef void (*ds_kq_part_kernel)(const void *w, const void *const *xq, int nx, int n, float *carry, int first,
                                  int last, float *out);

/* Quantized-activation kernels for the 32-element formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)... */
ds_qrow_kernel ds_qrow_kernel_scalar(ds_dtype t);
ds_qrow_kernel ds_qrow_kernel_avx2(ds_dtype t);
ds_qrow_kernel ds_qrow_kernel_avx512(ds_dtype t);
/* ...and for the K-quants (Q4_K, Q5_K, Q6_K); NULL for any other type. */
ds_qrow_kernel ds_kquant_kernel_scalar(ds_dtype t);
ds_qrow_kernel ds_kquant_kernel_avx2(ds_dtype t);
ds_kq_part_kernel ds_kquant_part_kernel_scalar(ds_dtype t);
ds_kq_part_kernel ds_kquant_part_kernel_avx2(ds_dtype t);
ds_kq_part_kernel ds_kquant_part_kernel_avx512(ds_dtype t);
ds_qrow_kernel ds_kquant_kernel_avx512(ds_dtype t);

#endif
