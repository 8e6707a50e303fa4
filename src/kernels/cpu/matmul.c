/* ds_matmul: weight rows are split into fixed chunks handed to the thread pool; inside a
 * chunk each weight row meets the activation rows in groups of up to DS_NX_MAX. Types without
 * a direct row kernel (the block-quantized ones) are dequantized one weight row at a time into
 * per-thread scratch and then use the f32 kernel, so every type gets the same reduction order
 * for a given variant. */
#include <stdlib.h>

#include "kernels/cpu/variants.h"

#define ROWS_PER_TASK 16

typedef struct matmul_job {
    const ds_tensor *w;
    const float *x;
    int n_rows;
    float *y;
    int64_t ldy;
    ds_row_kernel kernel;     /* direct kernel for w's type, or NULL */
    ds_row_kernel f32_kernel; /* used after dequantizing */
    float *scratch;           /* [threads][in] for dequantized rows */
} matmul_job;

static ds_row_kernel kernel_for(ds_dtype t) {
    return ds_cpu_level_get() == DS_CPU_AVX2 ? ds_row_kernel_avx2(t) : ds_row_kernel_scalar(t);
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

static void matmul_task(void *ctx, int task, int thread) {
    const matmul_job *j = ctx;
    const int64_t out_dim = j->w->shape[0], in = j->w->shape[1];
    const size_t row_bytes = j->w->nbytes / (size_t)out_dim;
    const int64_t o0 = (int64_t)task * ROWS_PER_TASK;
    const int64_t o1 = o0 + ROWS_PER_TASK < out_dim ? o0 + ROWS_PER_TASK : out_dim;
    float *deq = j->scratch ? j->scratch + (size_t)thread * (size_t)in : NULL;
    for (int r0 = 0; r0 < j->n_rows; r0 += DS_NX_MAX) {
        int nx = j->n_rows - r0 < DS_NX_MAX ? j->n_rows - r0 : DS_NX_MAX;
        const float *xs[DS_NX_MAX];
        for (int k = 0; k < nx; k++) xs[k] = j->x + (size_t)(r0 + k) * (size_t)in;
        for (int64_t o = o0; o < o1; o++) {
            const uint8_t *wrow = (const uint8_t *)j->w->data + (size_t)o * row_bytes;
            float res[DS_NX_MAX];
            if (j->kernel) {
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
    matmul_job j = {.w = w, .x = x, .n_rows = n_rows, .y = y, .ldy = ldy};
    j.kernel = w->scale ? NULL : kernel_for(w->type);
    j.f32_kernel = kernel_for(DS_F32);
    if (!j.kernel) j.scratch = malloc(sizeof(float) * (size_t)ds_pool_size(pool) * (size_t)w->shape[1]);
    int n_tasks = (int)((w->shape[0] + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
    ds_pool_run(pool, n_tasks, matmul_task, &j);
    free(j.scratch);
}

void ds_get_row(const ds_tensor *t, int64_t row, float *out) {
    const int64_t in = t->shape[t->ndim - 1];
    const size_t row_bytes = t->nbytes / (size_t)(ds_tensor_nelems(t) / in);
    row_to_f32(t, row, (const uint8_t *)t->data + (size_t)row * row_bytes, out);
}

float ds_dot_f32(const float *a, const float *b, int n) {
    return ds_cpu_level_get() == DS_CPU_AVX2 ? ds_dot_f32_avx2(a, b, n) : ds_dot_f32_scalar(a, b, n);
}
