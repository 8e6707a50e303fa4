/* ds_matmul: weight rows are split into fixed chunks of ROWS_PER_TASK, activation rows into
 * chunks that fit in L2; a task is one weight chunk × one activation chunk.
 *  - Block-quantized weights with a quantized-activation kernel (the default activation mode):
 *    the activation rows are first quantized, each on its own and in parallel, into scratch;
 *    each weight row then meets them in groups of up to DS_QNX_MAX (DS_NX_MAX for the
 *    K-quants) and the row kernels take integer dot products.
 *  - Float weights: one tile-kernel call per task. Other types (and every type in the exact
 *    mode) are dequantized, the task's weight rows into per-thread scratch, and use the F32
 *    tile kernel, so every type gets the same reduction order for a given variant. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/variants.h"

#define ROWS_PER_TASK 16
/* Row elements per K-quant kernel call in prefill (a multiple of 256). The 32-element formats'
 * smaller activation blocks take whole rows: spans measured no faster there. */
#define K_SPAN 2048
/* A task covers ROWS_PER_TASK weight rows and at most this many bytes of activation rows (the
 * activations it reads, quantized or f32), so that in prefill a core keeps one chunk of
 * activations in its L2 cache across the weight chunks it takes: tasks go chunk by chunk. */
#define X_CHUNK_BYTES (512 * 1024)

_Static_assert(DS_QNX_MAX >= DS_NX_MAX, "qmatmul_rows' row arrays are sized DS_QNX_MAX");

typedef struct matmul_job {
    const ds_tensor *w;
    size_t w_row_bytes;       /* bytes of one weight row */
    const float *x;           /* [n_rows][ldx] activations */
    size_t ldx;
    float *x_copy;            /* x on 64-byte lines, if the caller's was not; or NULL */
    int n_rows;
    float *y;
    int64_t ldy;
    ds_qrow_kernel qkernel;   /* quantized-activation kernel for w's type, or NULL */
    ds_act_kind act_kind;     /* the activation format qkernel takes */
    int group;                /* activation rows per qkernel call */
    uint8_t *xq;              /* [n_rows][xq_row_bytes] quantized activations */
    size_t xq_row_bytes;
    ds_kq_part_kernel part_kernel; /* K-quants: qkernel in spans, or NULL */
    float *carry;             /* [threads][ROWS_PER_TASK][DS_NX_MAX][DS_KQ_CARRY] partial sums */
    size_t xq_span_bytes;     /* bytes of one activation row's K_SPAN elements, */
    size_t w_span_bytes;      /* ... and of one weight row's */
    ds_gemm_kernel kernel;    /* f32-activation kernel for w's type, or NULL */
    ds_gemm_kernel f32_kernel; /* used after dequantizing */
    float *scratch;           /* [threads][ROWS_PER_TASK][in] for dequantized rows */
    int x_chunk;              /* activation rows per task, a multiple of group */
    int w_tasks;              /* tasks per activation chunk */
} matmul_job;

static ds_gemm_kernel kernel_for(ds_dtype t) {
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: return ds_gemm_kernel_avx512(t);
    case DS_CPU_AVX2: return ds_gemm_kernel_avx2(t);
    default: return ds_gemm_kernel_scalar(t);
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

/* The span kernel matching qkernel_for's K-quant kernel. */
static ds_kq_part_kernel part_kernel_for(ds_dtype t) {
    switch (ds_cpu_level_get()) {
    case DS_CPU_AVX512: return ds_kquant_part_kernel_avx512(t);
    case DS_CPU_AVX2: return ds_kquant_part_kernel_avx2(t);
    default: return ds_kquant_part_kernel_scalar(t);
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
    const float *x = j->x + (size_t)task * j->ldx;
    void *out = j->xq + (size_t)task * j->xq_row_bytes;
    const int avx512 = ds_cpu_level_get() == DS_CPU_AVX512;
    if (j->act_kind == DS_ACT_Q8K) (avx512 ? ds_quantize_act_q8k_avx512 : ds_quantize_act_q8k)(x, in, out);
    else if (avx512) ds_quantize_act_q8_avx512(x, in, out);
    else ds_quantize_act_q8(x, in, out);
}

/* Weight row o against activation rows r0 .. r0+nx, whole. */
static void row_dot(const matmul_job *j, int64_t o, int r0, int nx) {
    const void *xqs[DS_QNX_MAX] = {0};
    for (int k = 0; k < nx; k++) xqs[k] = j->xq + (size_t)(r0 + k) * j->xq_row_bytes;
    float res[DS_QNX_MAX];
    j->qkernel((const uint8_t *)j->w->data + (size_t)o * j->w_row_bytes, xqs, nx, (int)j->w->shape[1], res);
    for (int k = 0; k < nx; k++) j->y[(size_t)(r0 + k) * (size_t)j->ldy + (size_t)o] = res[k];
}

/* Span c of weight row o against activation rows r0 .. r0+nx, their partial sums carried in
 * `carry` from span to span (see ds_kq_part_kernel). */
static void span_dot(const matmul_job *j, int64_t o, int c, int spans, int r0, int nx, float *carry) {
    const int in = (int)j->w->shape[1], k0 = c * K_SPAN, n = in - k0 < K_SPAN ? in - k0 : K_SPAN;
    const void *xqs[DS_NX_MAX] = {0};
    for (int k = 0; k < nx; k++) xqs[k] = j->xq + (size_t)(r0 + k) * j->xq_row_bytes + (size_t)c * j->xq_span_bytes;
    float res[DS_NX_MAX];
    j->part_kernel((const uint8_t *)j->w->data + (size_t)o * j->w_row_bytes + (size_t)c * j->w_span_bytes, xqs, nx, n,
                   carry, c == 0, c == spans - 1, res);
    if (c == spans - 1)
        for (int k = 0; k < nx; k++) j->y[(size_t)(r0 + k) * (size_t)j->ldy + (size_t)o] = res[k];
}

/* Weight rows [o0, o1) × quantized activation rows [x0, x1). In prefill, K-quant rows longer
 * than K_SPAN go span by span, so that a group's activations for one span stay in L1 while
 * every weight row of the task meets them (a whole row of ffn_down's 8960 elements, times a
 * group, would not fit, and the kernels would wait on L2). Spans give the same bits as whole
 * rows, so a lone group (decode) streams each weight row whole. */
static void qmatmul_rows(const matmul_job *j, int64_t o0, int64_t o1, int x0, int x1, int thread) {
    const int spans = ((int)j->w->shape[1] + K_SPAN - 1) / K_SPAN;
    const int by_span = j->part_kernel && x1 - x0 > j->group; /* part_kernel: rows > K_SPAN */
    for (int r0 = x0; r0 < x1; r0 += j->group) {
        const int nx = x1 - r0 < j->group ? x1 - r0 : j->group;
        if (!by_span) {
            for (int64_t o = o0; o < o1; o++) row_dot(j, o, r0, nx);
            continue;
        }
        float *carry = j->carry + (size_t)thread * ROWS_PER_TASK * DS_NX_MAX * DS_KQ_CARRY;
        for (int c = 0; c < spans; c++)
            for (int64_t o = o0; o < o1; o++)
                span_dot(j, o, c, spans, r0, nx, carry + (size_t)(o - o0) * DS_NX_MAX * DS_KQ_CARRY);
    }
}

static void matmul_task(void *ctx, int task, int thread) {
    const matmul_job *j = ctx;
    const int64_t out_dim = j->w->shape[0], in = j->w->shape[1];
    const size_t row_bytes = j->w_row_bytes;
    const int64_t o0 = (int64_t)(task % j->w_tasks) * ROWS_PER_TASK;
    const int64_t o1 = o0 + ROWS_PER_TASK < out_dim ? o0 + ROWS_PER_TASK : out_dim;
    const int x0 = task / j->w_tasks * j->x_chunk;
    const int x1 = x0 + j->x_chunk < j->n_rows ? x0 + j->x_chunk : j->n_rows;
    if (j->qkernel) {
        qmatmul_rows(j, o0, o1, x0, x1, thread);
        return;
    }
    const float *x = j->x + (size_t)x0 * j->ldx;
    float *y = j->y + (size_t)x0 * (size_t)j->ldy + (size_t)o0;
    if (j->kernel) {
        j->kernel((const uint8_t *)j->w->data + (size_t)o0 * row_bytes, row_bytes, (int)(o1 - o0), x, j->ldx,
                  x1 - x0, (int)in, y, (size_t)j->ldy);
        return;
    }
    /* Dequantize the task's weight rows once for all its activation rows: cheap next to the dots. */
    float *deq = j->scratch + (size_t)thread * ROWS_PER_TASK * (size_t)in;
    for (int64_t o = o0; o < o1; o++)
        row_to_f32(j->w, o, (const uint8_t *)j->w->data + (size_t)o * row_bytes, deq + (size_t)(o - o0) * (size_t)in);
    j->f32_kernel(deq, sizeof(float) * (size_t)in, (int)(o1 - o0), x, j->ldx, x1 - x0, (int)in, y,
                  (size_t)j->ldy);
}

void ds_matmul(ds_pool *pool, const ds_tensor *w, const float *x, int n_rows, float *y, int64_t ldy) {
    matmul_job j = {.w = w, .x = x, .ldx = (size_t)w->shape[1], .n_rows = n_rows, .y = y, .ldy = ldy,
                    .group = DS_GEMM_X_GROUP};
    j.w_row_bytes = w->shape[0] > 0 ? w->nbytes / (size_t)w->shape[0] : 0;
    const int in = (int)w->shape[1];
    j.qkernel = w->scale ? NULL : qkernel_for(w->type);
    if (j.qkernel) {
        j.act_kind = ds_act_kind_for(w->type);
        j.group = j.act_kind == DS_ACT_Q8 ? DS_QNX_MAX : DS_NX_MAX;
        j.xq_row_bytes = j.act_kind == DS_ACT_Q8K ? sizeof(ds_act_q8k) * (size_t)(in / 256)
                                                  : sizeof(ds_act_q8) * (size_t)ds_act_q8_groups(in);
        if (j.act_kind == DS_ACT_Q8K && in > K_SPAN && n_rows > j.group) {
            j.part_kernel = part_kernel_for(w->type);
            j.carry = malloc(sizeof(float) * (size_t)ds_pool_size(pool) * ROWS_PER_TASK * DS_NX_MAX * DS_KQ_CARRY);
            j.xq_span_bytes = sizeof(ds_act_q8k) * (K_SPAN / 256);
            j.w_span_bytes = ds_dtype_block_bytes(w->type) * (size_t)(K_SPAN / ds_dtype_block_elems(w->type));
        }
        /* rows of whole 64-byte lines, so row kernels may load them aligned */
        j.xq_row_bytes = (j.xq_row_bytes + 63) & ~(size_t)63;
        j.xq = aligned_alloc(64, j.xq_row_bytes * (size_t)n_rows);
        ds_pool_run(pool, n_rows, quantize_task, &j);
    } else {
        j.kernel = w->scale ? NULL : kernel_for(w->type);
        j.f32_kernel = kernel_for(DS_F32);
        if (!j.kernel) j.scratch = malloc(sizeof(float) * (size_t)ds_pool_size(pool) * ROWS_PER_TASK * (size_t)in);
        /* Vector loads that straddle cache lines cost two: in prefill every activation is
         * loaded many times, so rows not on 64-byte lines (large mallocs start 16 bytes past
         * a page) are copied onto aligned ones first. */
        if (n_rows > 1 && ((uintptr_t)x % 64 || in % 16)) {
            const size_t ld = ((size_t)in + 15) & ~(size_t)15;
            j.x_copy = aligned_alloc(64, sizeof(float) * ld * (size_t)n_rows);
            for (int r = 0; r < n_rows; r++) memcpy(j.x_copy + ld * (size_t)r, x + (size_t)in * (size_t)r, sizeof(float) * (size_t)in);
            j.x = j.x_copy, j.ldx = ld;
        }
    }
    const size_t x_row_bytes = j.xq ? j.xq_row_bytes : sizeof(float) * j.ldx;
    const size_t fit = x_row_bytes ? X_CHUNK_BYTES / x_row_bytes / (size_t)j.group * (size_t)j.group : (size_t)n_rows;
    j.x_chunk = fit < (size_t)j.group ? j.group : fit > (size_t)n_rows ? n_rows : (int)fit;
    j.w_tasks = (int)((w->shape[0] + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
    const int x_chunks = n_rows > 0 ? (n_rows + j.x_chunk - 1) / j.x_chunk : 0;
    ds_pool_run(pool, x_chunks * j.w_tasks, matmul_task, &j);
    free(j.xq);
    free(j.carry);
    free(j.scratch);
    free(j.x_copy);
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
