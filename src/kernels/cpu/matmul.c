/* ds_matmul: weight rows are split into fixed chunks handed to the thread pool; inside a
 * chunk each weight row meets the activation rows in groups of up to DS_NX_MAX (DS_QNX_MAX for
 * the 32-element quantized kernels).
 *  - Block-quantized weights with a quantized-activation kernel (the default activation mode):
 *    the activation rows are first quantized, each on its own and in parallel, into scratch;
 *    the row kernels then take integer dot products.
 *  - Float weights use their f32 row kernel. Other types (and every type in the exact mode)
 *    are dequantized one weight row at a time into per-thread scratch and use the f32 kernel,
 *    so every type gets the same reduction order for a given variant. */
#include <stdlib.h>

#include "kernels/cpu/variants.h"

#define ROWS_PER_TASK 16
/* A task covers ROWS_PER_TASK weight rows and at most this many bytes of activation rows (the
 * activations it reads, quantized or f32), so that in prefill a core keeps one chunk of
 * activations in its L2 cache across the weight chunks it takes: tasks go chunk by chunk. */
#define X_CHUNK_BYTES (512 * 1024)

_Static_assert(DS_QNX_MAX >= DS_NX_MAX, "the row arrays below are sized DS_QNX_MAX");

typedef struct matmul_job {
    const ds_tensor *w;
    const float *x;
    int n_rows;
    float *y;
    int64_t ldy;
    ds_qrow_kernel qkernel;   /* quantized-activation kernel for w's type, or NULL */
    ds_act_kind act_kind;     /* the activation format qkernel takes */
    int group;                /* activation rows per kernel call */
    uint8_t *xq;              /* [n_rows][xq_row_bytes] quantized activations */
    size_t xq_row_bytes;
    ds_row_kernel kernel;     /* direct f32-activation kernel for w's type, or NULL */
    ds_row_kernel f32_kernel; /* used after dequantizing */
    float *scratch;           /* [threads][in] for dequantized rows */
    int x_chunk;              /* activation rows per task, a multiple of group */
    int w_tasks;              /* tasks per activation chunk */
} matmul_job;

static ds_row_kernel kernel_for(ds_dtype t) {
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: {
        ds_row_kernel k = ds_row_kernel_avx512(t);
        return k ? k : ds_row_kernel_avx2(t);
    }
    case DS_CPU_AVX2: return ds_row_kernel_avx2(t);
    default: return ds_row_kernel_scalar(t);
    }
}

static ds_qrow_kernel qkernel_for(ds_dtype t) {
    if (ds_act_mode_get() == DS_ACT_EXACT) return NULL;
    const int kq = ds_act_kind_for(t) == DS_ACT_Q8K;
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: return kq ? ds_kquant_kernel_avx512(t) : ds_qrow_kernel_avx512(t);
    case DS_CPU_AVX2: return kq ? ds_kquant_kernel_avx2(t) : ds_qrow_kernel_avx2(t);
    default: return kq ? ds_kquant_kernel_scalar(t) : ds_qrow_kernel_scalar(t);
    }
}

int ds_matmul_supports(ds_dtype t) {
    switch (t) {
    case DS_F32: case DS_F16: case DS_BF16: case DS_F8_E4M3:
    case DS_Q4_0: case DS_Q4_1: case DS_Q5_0: case DS_Q5_1: case DS_Q8_0:
    case DS_Q4_K: case DS_Q5_K: case DS_Q6_K:
        return 1;
    default: return 0;
    }
}

/* Row o of w as f32: block-scaled FP8 needs the row index for its scales. */
static void row_to_f32(const ds_tensor *w, int64_t o, const uint8_t *wrow, float *out) {
    const int64_t in = w->shape[w->ndim - 1];
    ds_dequantize_row(w->type, wrow, out, in);
    if (w->scale) {
        const float *s = w->scale + (o / DS_FP8_BLOCK) * w->scale_cols;
        for (int64_t c = 0; c < in; c++) out[c] *= s[c / DS_FP8_BLOCK];
    }
}

static void quantize_task(void *ctx, int task, int thread) {
    (void)thread;
    const matmul_job *j = ctx;
    const int in = (int)j->w->shape[1];
    const float *x = j->x + (size_t)task * (size_t)in;
    void *out = j->xq + (size_t)task * j->xq_row_bytes;
    if (j->act_kind == DS_ACT_Q8K) ds_quantize_act_q8k(x, in, out);
    else if (ds_cpu_level_get() == DS_CPU_AVX512) ds_quantize_act_q8_avx512(x, in, out);
    else ds_quantize_act_q8(x, in, out);
}

static void matmul_task(void *ctx, int task, int thread) {
    const matmul_job *j = ctx;
    const int64_t out_dim = j->w->shape[0], in = j->w->shape[1];
    const size_t row_bytes = j->w->nbytes / (size_t)out_dim;
    const int64_t o0 = (int64_t)(task % j->w_tasks) * ROWS_PER_TASK;
    const int64_t o1 = o0 + ROWS_PER_TASK < out_dim ? o0 + ROWS_PER_TASK : out_dim;
    const int x0 = task / j->w_tasks * j->x_chunk;
    const int x1 = x0 + j->x_chunk < j->n_rows ? x0 + j->x_chunk : j->n_rows;
    float *deq = j->scratch ? j->scratch + (size_t)thread * (size_t)in : NULL;
    for (int r0 = x0; r0 < x1; r0 += j->group) {
        int nx = x1 - r0 < j->group ? x1 - r0 : j->group;
        const float *xs[DS_QNX_MAX];
        const void *xqs[DS_QNX_MAX];
        for (int k = 0; k < nx; k++) {
            xs[k] = j->x + (size_t)(r0 + k) * (size_t)in;
            if (j->xq) xqs[k] = j->xq + (size_t)(r0 + k) * j->xq_row_bytes;
        }
        for (int64_t o = o0; o < o1; o++) {
            const uint8_t *wrow = (const uint8_t *)j->w->data + (size_t)o * row_bytes;
            float res[DS_QNX_MAX];
            if (j->qkernel) {
                j->qkernel(wrow, xqs, nx, (int)in, res);
            } else if (j->kernel) {
                j->kernel(wrow, xs, nx, (int)in, res);
            } else {
                /* Dequantize once per group of activation rows: cheap next to the dots. */
                row_to_f32(j->w, o, wrow, deq);
                j->f32_kernel(deq, xs, nx, (int)in, res);
            }
            for (int k = 0; k < nx; k++) j->y[(size_t)(r0 + k) * (size_t)j->ldy + (size_t)o] = res[k];
        }
    }
}

void ds_matmul(ds_pool *pool, const ds_tensor *w, const float *x, int n_rows, float *y, int64_t ldy) {
    matmul_job j = {.w = w, .x = x, .n_rows = n_rows, .y = y, .ldy = ldy, .group = DS_NX_MAX};
    const int in = (int)w->shape[1];
    j.qkernel = w->scale ? NULL : qkernel_for(w->type);
    if (j.qkernel) {
        j.act_kind = ds_act_kind_for(w->type);
        if (j.act_kind == DS_ACT_Q8) j.group = DS_QNX_MAX;
        j.xq_row_bytes = j.act_kind == DS_ACT_Q8K ? sizeof(ds_act_q8k) * (size_t)(in / 256)
                                                  : sizeof(ds_act_q8) * (size_t)ds_act_q8_groups(in);
        /* rows of whole 64-byte lines, so row kernels may load them aligned */
        j.xq_row_bytes = (j.xq_row_bytes + 63) & ~(size_t)63;
        j.xq = aligned_alloc(64, j.xq_row_bytes * (size_t)n_rows);
        ds_pool_run(pool, n_rows, quantize_task, &j);
    } else {
        j.kernel = w->scale ? NULL : kernel_for(w->type);
        j.f32_kernel = kernel_for(DS_F32);
        if (!j.kernel) j.scratch = malloc(sizeof(float) * (size_t)ds_pool_size(pool) * (size_t)in);
    }
    const size_t x_row_bytes = j.xq ? j.xq_row_bytes : sizeof(float) * (size_t)in;
    const size_t fit = x_row_bytes ? X_CHUNK_BYTES / x_row_bytes / (size_t)j.group * (size_t)j.group : (size_t)n_rows;
    j.x_chunk = fit < (size_t)j.group ? j.group : fit > (size_t)n_rows ? n_rows : (int)fit;
    j.w_tasks = (int)((w->shape[0] + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
    const int x_chunks = n_rows > 0 ? (n_rows + j.x_chunk - 1) / j.x_chunk : 0;
    ds_pool_run(pool, x_chunks * j.w_tasks, matmul_task, &j);
    free(j.xq);
    free(j.scratch);
}

void ds_get_row(const ds_tensor *t, int64_t row, float *out) {
    const int64_t in = t->shape[t->ndim - 1];
    const size_t row_bytes = t->nbytes / (size_t)(ds_tensor_nelems(t) / in);
    row_to_f32(t, row, (const uint8_t *)t->data + (size_t)row * row_bytes, out);
}

float ds_dot_f32(const float *a, const float *b, int n) {
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: return ds_dot_f32_avx512(a, b, n);
    case DS_CPU_AVX2: return ds_dot_f32_avx2(a, b, n);
    default: return ds_dot_f32_scalar(a, b, n);
    }
}
