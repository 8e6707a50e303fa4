/* Streams the planned tensors into the GGUF: each tensor is cut into chunks of rows; the rows
 * of a chunk are spread over the thread pool (each row read as f32 from its source — after
 * the llama Q/K permutation where asked — and quantized on its own, so results never depend
 * on the thread count), then the chunk is written. Rows already in the output type are copied
 * byte for byte. Memory stays at a chunk's worth whatever the model's size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "convert/convert_internal.h"
#include "kernels/kernels.h"
#include "tensor/quantize.h"

#define CHUNK_BYTES (16u << 20) /* f32 input per chunk */
#define TASKS_PER_THREAD 4

typedef struct chunk_job {
    const cv_tensor *t;
    bool raw;                /* copy bytes: source rows are already in the output type */
    int64_t row_len, rows_per_part;
    size_t out_row_bytes;
    int64_t row0, n_rows;    /* this chunk */
    int n_tasks;
    uint8_t *out;            /* n_rows × out_row_bytes */
    float *scratch;          /* [threads][row_len] */
    int64_t *bad_row;        /* [n_tasks]: first row with a non-finite value, or -1 */
} chunk_job;

/* Source row r of t: its part, and the row inside it after any head permutation. */
static const ds_tensor *source_row(const cv_tensor *t, int64_t r, int64_t rows_per_part, int64_t *local) {
    int64_t l = r % rows_per_part;
    if (t->perm_heads) {
        /* within a head of hd rows, row 2i+j comes from row j·hd/2 + i */
        const int64_t hd = rows_per_part / t->perm_heads, h = l / hd, k = l % hd;
        l = h * hd + (k % 2) * (hd / 2) + k / 2;
    }
    *local = l;
    return cv_part(t, (int)(r / rows_per_part));
}

static void chunk_task(void *ctx, int task, int thread) {
    chunk_job *j = ctx;
    const int64_t a = j->n_rows * task / j->n_tasks, b = j->n_rows * (task + 1) / j->n_tasks;
    float *row = j->scratch + (size_t)thread * (size_t)j->row_len;
    j->bad_row[task] = -1;
    for (int64_t i = a; i < b; i++) {
        int64_t local;
        const ds_tensor *s = source_row(j->t, j->row0 + i, j->rows_per_part, &local);
        uint8_t *dst = j->out + (size_t)i * j->out_row_bytes;
        if (j->raw) {
            const size_t src_row_bytes = s->nbytes / (size_t)j->rows_per_part;
            memcpy(dst, (const uint8_t *)s->data + (size_t)local * src_row_bytes, j->out_row_bytes);
            continue;
        }
        ds_get_row(s, local, row);
        for (int64_t c = 0; c < j->row_len; c++)
            if (!isfinite(row[c])) {
                if (j->bad_row[task] < 0) j->bad_row[task] = j->row0 + i;
                break;
            }
        ds_quantize_row(j->t->type, row, dst, j->row_len);
    }
}

/* Whether t's bytes can be copied as they are. */
static bool copies_raw(const cv_tensor *t) {
    if (t->perm_heads) return false;
    for (int i = 0; i < t->n_parts; i++)
        if (cv_part(t, i)->type != t->type || cv_part(t, i)->scale) return false;
    return true;
}

static int check_convertible(const cv_tensor *t, ds_err *err) {
    if (copies_raw(t)) return 0;
    if (!ds_dtype_can_quantize(t->type))
        return ds_errf(err, "tensor '%s': dsinfer cannot write type %s", t->name, ds_dtype_name(t->type));
    for (int i = 0; i < t->n_parts; i++)
        if (!ds_dtype_can_dequantize(cv_part(t, i)->type))
            return ds_errf(err, "tensor '%s' has type %s, which dsinfer cannot convert (it can: F32, F16, BF16, "
                           "F8_E4M3, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)", t->name,
                           ds_dtype_name(cv_part(t, i)->type));
    return 0;
}

typedef struct writer_state {
    FILE *out;
    ds_pool *pool;
    const ds_quantize_opts *o;
    uint64_t done, total;
    float *scratch;
    size_t scratch_len;
    uint8_t *out_buf;
    size_t out_cap;
} writer_state;

static int grow(void **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    void *q = realloc(*p, need);
    if (!q) return -1;
    *p = q;
    *cap = need;
    return 0;
}

static int write_tensor(writer_state *ws, gguf_writer *w, const cv_tensor *t, ds_err *err) {
    chunk_job j = {.t = t, .raw = copies_raw(t), .row_len = t->shape[t->ndim - 1]};
    int64_t elems = 1;
    for (int d = 0; d < t->ndim; d++) elems *= t->shape[d];
    const int64_t rows = j.row_len ? elems / j.row_len : 0;
    if (rows == 0) return 0;
    j.rows_per_part = rows / t->n_parts;
    if (ds_dtype_bytes_for(t->type, j.row_len, &j.out_row_bytes, t->name, err)) return -1;
    int64_t chunk = CHUNK_BYTES / (4 * (uint64_t)j.row_len);
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    const int threads = ds_pool_size(ws->pool);
    int64_t max_tasks = (int64_t)threads * TASKS_PER_THREAD;
    int64_t bad[64 * TASKS_PER_THREAD + 1];
    if (max_tasks > (int64_t)(sizeof bad / sizeof bad[0])) max_tasks = sizeof bad / sizeof bad[0];
    size_t scratch_bytes = (size_t)threads * (size_t)j.row_len * sizeof(float);
    if (grow((void **)&ws->scratch, &ws->scratch_len, scratch_bytes) ||
        grow((void **)&ws->out_buf, &ws->out_cap, (size_t)chunk * j.out_row_bytes))
        return ds_errf(err, "out of memory converting tensor '%s'", t->name);
    j.scratch = ws->scratch;
    j.out = ws->out_buf;
    j.bad_row = bad;
    for (j.row0 = 0; j.row0 < rows; j.row0 += chunk) {
        if (ws->o->cancel && *ws->o->cancel) return ds_errf(err, "interrupted");
        j.n_rows = rows - j.row0 < chunk ? rows - j.row0 : chunk;
        j.n_tasks = (int)(j.n_rows < max_tasks ? j.n_rows : max_tasks);
        ds_pool_run(ws->pool, j.n_tasks, chunk_task, &j);
        for (int k = 0; k < j.n_tasks; k++)
            if (bad[k] >= 0)
                return ds_errf(err, "tensor '%s': row %lld holds a NaN or infinite value", t->name, (long long)bad[k]);
        size_t n = (size_t)j.n_rows * j.out_row_bytes;
        if (gguf_write_data(w, ws->out, j.out, n, err)) return -1;
        ws->done += n;
        if (ws->o->progress) ws->o->progress(ws->o->progress_ctx, ws->done, ws->total);
    }
    return 0;
}

int cv_write(cv_plan *p, FILE *out, const ds_quantize_opts *o, ds_err *err) {
    for (int i = 0; i < p->n; i++) {
        const cv_tensor *t = &p->t[i];
        if (check_convertible(t, err) || gguf_add_tensor(p->w, t->name, t->type, t->ndim, t->shape, err)) return -1;
    }
    writer_state ws = {.out = out, .o = o};
    for (int i = 0; i < p->n; i++) {
        size_t n;
        int64_t elems = 1;
        for (int d = 0; d < p->t[i].ndim; d++) elems *= p->t[i].shape[d];
        if (ds_dtype_bytes_for(p->t[i].type, elems, &n, p->t[i].name, err)) return -1;
        ws.total += n;
    }
    if (!(ws.pool = ds_pool_create(o->threads))) return ds_errf(err, "out of memory starting %d threads", o->threads);
    int rc = gguf_write_header(p->w, out, err);
    for (int i = 0; rc == 0 && i < p->n; i++) rc = write_tensor(&ws, p->w, &p->t[i], err);
    if (rc == 0) rc = gguf_write_finish(p->w, out, err);
    ds_pool_destroy(ws.pool);
    free(ws.scratch);
    free(ws.out_buf);
    return rc;
}
