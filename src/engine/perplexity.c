/* Perplexity and KL divergence over chunks of a token sequence (see perplexity.h). */
#include "engine/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/session.h"

/* Running sums of one per-position quantity. */
typedef struct acc {
    double sum, sum2;
    int64_t n;
} acc;

static void acc_add(acc *a, double v) {
    a->sum += v;
    a->sum2 += v * v;
    a->n++;
}

/* Mean and standard error of the mean, as llama.cpp reports them. */
static ds_ppl_stat acc_stat(const acc *a) {
    ds_ppl_stat s = {0, 0};
    if (a->n == 0) return s;
    s.mean = a->sum / (double)a->n;
    double var = a->sum2 / (double)a->n - s.mean * s.mean;
    if (a->n > 1 && var > 0) s.err = sqrt(var / (double)(a->n - 1));
    return s;
}

/* Turns a row of logits into log-probabilities in place; returns the index of the largest. */
static int log_softmax(float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    const float max = x[best];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)(x[i] - max));
    const float shift = max + (float)log(sum);
    for (int i = 0; i < n; i++) x[i] -= shift;
    return best;
}

/* One chunk's scored rows, for the per-row tasks. */
typedef struct rows_job {
    float *lp;               /* [rows][n_vocab]: logits in, log-probabilities out */
    const float *base_lp;    /* [rows][n_vocab] base log-probabilities, or NULL */
    const int32_t *targets;  /* [rows] the token each row predicts */
    int n_vocab;
    double *nll, *kl;        /* [rows] */
    int *argmax;             /* [rows] */
} rows_job;

static void row_task(void *ctx, int r, int thread) {
    (void)thread;
    const rows_job *j = ctx;
    float *lp = j->lp + (size_t)r * (size_t)j->n_vocab;
    j->argmax[r] = log_softmax(lp, j->n_vocab);
    j->nll[r] = -(double)lp[j->targets[r]];
    if (!j->base_lp) return;
    const float *lb = j->base_lp + (size_t)r * (size_t)j->n_vocab;
    double kl = 0;
    for (int i = 0; i < j->n_vocab; i++) kl += exp((double)lb[i]) * (double)(lb[i] - lp[i]);
    j->kl[r] = kl;
}

/* Evaluates one chunk from an empty cache: the first half only fills the cache; the logits of
 * the `rows` scored positions after it go to `out`. */
static int run_chunk(ds_session *s, const int32_t *chunk, int first, int rows, float *out, ds_err *err) {
    ds_session_reset(s);
    if (ds_session_feed(s, chunk, first, err)) return -1;
    return ds_session_feed_all(s, chunk + first, rows, out, err);
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ds_perplexity_chunks(int n_tokens, const ds_ppl_opts *o, int *n_chunks, ds_err *err) {
    if (o->n_ctx < 4) return ds_errf(err, "a context of %d tokens is too small to score (at least 4)", o->n_ctx);
    if (n_tokens < 2 * o->n_ctx)
        return ds_errf(err, "the text is %d tokens; a context of %d needs at least %d (two chunks): "
                            "use a longer text or a smaller context",
                       n_tokens, o->n_ctx, 2 * o->n_ctx);
    int n = n_tokens / o->n_ctx;
    *n_chunks = o->max_chunks > 0 && o->max_chunks < n ? o->max_chunks : n;
    return 0;
}

static void fill_result(ds_ppl_result *r, const acc *nll, const acc *base_nll, const acc *kl, const acc *top1) {
    r->n_scored = nll->n;
    r->nll = acc_stat(nll);
    r->ppl = exp(r->nll.mean);
    r->ppl_err = r->ppl * r->nll.err;
    if (!r->has_base) return;
    r->base_nll = acc_stat(base_nll);
    r->base_ppl = exp(r->base_nll.mean);
    r->base_ppl_err = r->base_ppl * r->base_nll.err;
    r->kl = acc_stat(kl);
    r->top1 = acc_stat(top1);
}

int ds_perplexity(const ds_model *m, const ds_model *base, ds_pool *pool, const int32_t *tokens, int n_tokens,
                  const ds_ppl_opts *o, ds_ppl_progress progress, void *user, ds_ppl_result *out, ds_err *err) {
    int n_chunks;
    if (ds_perplexity_chunks(n_tokens, o, &n_chunks, err)) return -1;
    const int V = m->hp.n_vocab;
    if (base && base->hp.n_vocab != V)
        return ds_errf(err, "the base model has %d logits per position and the model %d: their vocabularies differ",
                       base->hp.n_vocab, V);
    const int n_ctx = o->n_ctx, first = n_ctx / 2, rows = n_ctx - 1 - first;
    const size_t row_bytes = sizeof(float) * (size_t)rows * (size_t)V;

    int rc = -1;
    ds_session sm = {0}, sb = {0};
    int32_t *chunk = malloc(sizeof *chunk * (size_t)n_ctx);
    float *lp = malloc(row_bytes), *base_lp = base ? malloc(row_bytes) : NULL;
    double *nll = malloc(sizeof *nll * (size_t)rows), *base_nll = malloc(sizeof *base_nll * (size_t)rows);
    double *kl = malloc(sizeof *kl * (size_t)rows);
    int *argmax = malloc(sizeof *argmax * (size_t)rows), *base_argmax = malloc(sizeof *base_argmax * (size_t)rows);
    if (!chunk || !lp || (base && !base_lp) || !nll || !base_nll || !kl || !argmax || !base_argmax) {
        ds_errf(err, "out of memory for %d scored positions of %d logits", rows, V);
        goto out;
    }
    if (ds_session_init(&sm, m, pool, n_ctx, o->batch, err)) goto out;
    if (base && ds_session_init(&sb, base, pool, n_ctx, o->batch, err)) goto out;

    acc a_nll = {0}, a_base = {0}, a_kl = {0}, a_top1 = {0};
    memset(out, 0, sizeof *out);
    out->n_chunks = n_chunks;
    out->has_base = base != NULL;
    for (int c = 0; c < n_chunks; c++) {
        const double t0 = seconds_now();
        memcpy(chunk, tokens + (size_t)c * (size_t)n_ctx, sizeof *chunk * (size_t)n_ctx);
        if (o->bos_id >= 0) chunk[0] = o->bos_id;
        const int32_t *targets = tokens + (size_t)c * (size_t)n_ctx + first + 1;
        if (base) {
            if (run_chunk(&sb, chunk, first, rows, base_lp, err)) goto out;
            rows_job jb = {base_lp, NULL, targets, V, base_nll, kl, base_argmax};
            ds_pool_run(pool, rows, row_task, &jb);
        }
        if (run_chunk(&sm, chunk, first, rows, lp, err)) goto out;
        rows_job jm = {lp, base_lp, targets, V, nll, kl, argmax};
        ds_pool_run(pool, rows, row_task, &jm);
        for (int r = 0; r < rows; r++) {
            acc_add(&a_nll, nll[r]);
            if (!base) continue;
            acc_add(&a_base, base_nll[r]);
            acc_add(&a_kl, kl[r]);
            acc_add(&a_top1, argmax[r] == base_argmax[r]);
        }
        out->chunks_done = c + 1;
        fill_result(out, &a_nll, &a_base, &a_kl, &a_top1);
        if (progress) progress(out, seconds_now() - t0, user);
    }
    rc = 0;
out:
    ds_session_free(&sm);
    ds_session_free(&sb);
    free(chunk), free(lp), free(base_lp), free(nll), free(base_nll), free(kl), free(argmax), free(base_argmax);
    return rc;
}
