/* CPU compute kernels used by the forward pass. Every kernel is batch- and thread-invariant:
 * the value computed for one (row, output) pair is a fixed sequence of float operations on
 * that row and that weight row only, whatever the batch size, the tiling or the thread count.
 * Variants (scalar, AVX2, AVX-512) are chosen once from cpuid, overridable with DSINFER_CPU. */
#ifndef DS_KERNELS_KERNELS_H
#define DS_KERNELS_KERNELS_H

#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "tensor/tensor.h"

typedef enum ds_cpu_level { DS_CPU_SCALAR, DS_CPU_AVX2, DS_CPU_AVX512 } ds_cpu_level;

/* The kernel variant in use: the best the CPU supports, or DSINFER_CPU=scalar|avx2|avx512 (an
 * unsupported or unknown value falls back to the best supported, with a warning on stderr). */
ds_cpu_level ds_cpu_level_get(void);
const char *ds_cpu_level_name(ds_cpu_level l);
/* Forces a level (tests compare variants); returns -1 if the CPU lacks it. */
int ds_cpu_level_set(ds_cpu_level l);

/* How ds_matmul treats activations meeting block-quantized weights. QUANTIZED (the default):
 * each activation row is quantized to 8-bit blocks and the dot products are integer (fast,
 * within the activation quantization error of the exact result). EXACT (DSINFER_ACT=f32):
 * dequantized weights times f32 activations, which is what reference comparisons need. */
typedef enum ds_act_mode { DS_ACT_QUANTIZED, DS_ACT_EXACT } ds_act_mode;
ds_act_mode ds_act_mode_get(void);
/* Forces a mode (tests compare both). */
void ds_act_mode_set(ds_act_mode m);

/* Whether ds_matmul accepts weights of this type. */
int ds_matmul_supports(ds_dtype t);

/* y[r][o] = sum_i w[o][i] * x[r][i] for r < n_rows, o < w->shape[0], i < w->shape[1].
 * w: 2-D weight of any supported type; x: f32, row stride w->shape[1]; y: f32, row stride
 * ldy. Parallel over output rows. */
void ds_matmul(ds_pool *pool, const ds_tensor *w, const float *x, int n_rows, float *y, int64_t ldy);

/* Row `row` of a 2-D tensor of any dequantizable type, as f32 (embedding lookup). */
void ds_get_row(const ds_tensor *t, int64_t row, float *out);

/* Plain f32 dot product in the fixed order of the active variant. */
float ds_dot_f32(const float *a, const float *b, int n);

/* out = x / sqrt(mean(x^2) + eps) * g, all f32, length n. */
void ds_rmsnorm(float *out, const float *x, const float *g, int n, float eps);

/* Softmax of x[0..n) in place, summed in index order (attention and routers use it). */
void ds_softmax(float *x, int n);

/* x = silu(gate) * up, in place on gate, length n. */
void ds_swiglu(float *gate, const float *up, int n);

/* ---- attention ---- */

/* One sequence's cached keys and values for one KV head, in paged blocks: the key of position p
 * starts at k + (blocks[p / block_size] · block_size + p % block_size) · k_stride, its value
 * likewise at v with v_stride. Keys have dk floats, values dv. */
typedef struct ds_attn_kv {
    const float *k, *v;
    const int32_t *blocks;
    int block_size;
    int64_t k_stride, v_stride;
    int dk, dv;
} ds_attn_kv;

/* One query: q (dk floats) attends to positions 0..pos; out receives dv floats. */
typedef struct ds_attn_query {
    const float *q;
    float *out;
    int pos;
} ds_attn_query;

/* Queries that share one pass over the keys and values (callers group this many). */
#define DS_ATTN_MAX_Q 64

/* Floats of scratch ds_attention needs for keys of dk floats. */
size_t ds_attention_scratch_floats(int dk);

/* out = softmax(scale · q·Kᵀ over positions 0..pos) · V for each of n_q queries on the same keys
 * and values, as an online softmax over tiles of 32 positions aligned to multiples of 32. Up to
 * DS_ATTN_MAX_Q queries share the loads of K and V; each query's result is a fixed sequence of
 * operations on its q, its pos and the cache, whatever the other queries are. */
void ds_attention(const ds_attn_kv *kv, const ds_attn_query *q, int n_q, float scale, float *scratch);

#endif
