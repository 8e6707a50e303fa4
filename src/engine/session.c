#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

#define KV_BLOCK_SIZE 16

int ds_session_init(ds_session *s, const ds_model *m, ds_pool *pool, int n_ctx, int chunk, ds_err *err) {
    memset(s, 0, sizeof *s);
    s->model = m;
    s->pool = pool;
    s->n_ctx = n_ctx;
    s->chunk = chunk;
    const ds_hparams *hp = &m->hp;
    int n_blocks = (n_ctx + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE;
    int wk, wv;
    ds_model_kv_widths(m, &wk, &wv);
    if (ds_kv_create(&s->kv, hp->n_layer, wk, wv, KV_BLOCK_SIZE, n_blocks, err)) return -1;
    s->fwd = ds_forward_ctx_create(m, chunk, n_ctx);
    s->logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!s->fwd || !s->logits) {
        ds_session_free(s);
        return ds_errf(err, "out of memory for forward buffers (%d tokens per step)", chunk);
    }
    return 0;
}

static int feed(ds_session *s, const int32_t *ids, int n, float *all_logits, ds_err *err) {
    if (n <= 0) return ds_errf(err, "nothing to feed");
    if (s->n_past + n > s->n_ctx)
        return ds_errf(err, "%d positions needed but the context holds %d", s->n_past + n, s->n_ctx);
    if (ds_kv_seq_reserve(s->kv, &s->seq, s->n_past + n, err)) return -1;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)s->chunk), *seq = calloc((size_t)s->chunk, sizeof(int32_t));
    uint8_t *want = malloc((size_t)s->chunk);
    if (!pos || !seq || !want) {
        free(pos), free(seq), free(want);
        return ds_errf(err, "out of memory");
    }
    const int32_t *tables[1] = {s->seq.blocks};
    const int32_t counts[1] = {s->seq.n_blocks};
    const size_t V = (size_t)s->model->hp.n_vocab;
    int rc = 0;
    for (int done = 0; done < n && rc == 0;) {
        int step = n - done < s->chunk ? n - done : s->chunk;
        for (int i = 0; i < step; i++) {
            pos[i] = s->n_past + i;
            want[i] = all_logits || done + i == n - 1;
        }
        ds_batch b = {.n_tokens = step, .tokens = ids + done, .pos = pos, .seq = seq, .want_logits = want,
                      .n_seqs = 1, .block_tables = tables, .block_counts = counts};
        float *out = all_logits ? all_logits + (size_t)done * V : s->logits;
        rc = ds_forward(s->model, s->fwd, s->kv, s->pool, &b, out, err);
        s->n_past += step;
        done += step;
    }
    if (rc == 0 && all_logits) memcpy(s->logits, all_logits + (size_t)(n - 1) * V, V * sizeof(float));
    free(pos), free(seq), free(want);
    return rc;
}

int ds_session_feed(ds_session *s, const int32_t *ids, int n, ds_err *err) { return feed(s, ids, n, NULL, err); }

int ds_session_feed_all(ds_session *s, const int32_t *ids, int n, float *all_logits, ds_err *err) {
    return feed(s, ids, n, all_logits, err);
}

void ds_session_reset(ds_session *s) {
    ds_kv_seq_release(s->kv, &s->seq);
    s->n_past = 0;
}

void ds_session_free(ds_session *s) {
    if (s->kv) ds_kv_seq_release(s->kv, &s->seq);
    ds_kv_free(s->kv);
    ds_forward_ctx_free(s->fwd);
    free(s->logits);
    memset(s, 0, sizeof *s);
}
