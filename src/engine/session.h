/* One sequence driven through the model: the KV blocks it owns, its position, and the logits
 * of its last token. `run`, `bench` and the tests use it; the server's scheduler batches many
 * sequences through ds_forward directly. */
#ifndef DS_ENGINE_SESSION_H
#define DS_ENGINE_SESSION_H

#include "model/model.h"

typedef struct ds_session {
    const ds_model *model;
    ds_pool *pool;
    ds_kv_cache *kv;
    ds_forward_ctx *fwd;
    ds_kv_seq seq;
    int n_past;     /* positions already in the cache */
    int n_ctx;      /* most positions this session holds */
    int chunk;      /* most tokens per forward call */
    float *logits;  /* [n_vocab] logits after the last fed token */
} ds_session;

/* Sizes the cache for n_ctx positions; prompts are fed in chunks of at most `chunk` tokens. */
int ds_session_init(ds_session *s, const ds_model *m, ds_pool *pool, int n_ctx, int chunk, ds_err *err);

/* Appends ids to the sequence and computes the logits of the last one; fails when the
 * context would overflow. */
int ds_session_feed(ds_session *s, const int32_t *ids, int n, ds_err *err);

/* Teacher forcing: like ds_session_feed but stores the logits of every fed token in
 * all_logits (n × n_vocab). */
int ds_session_feed_all(ds_session *s, const int32_t *ids, int n, float *all_logits, ds_err *err);

/* Forgets the sequence (frees its blocks) so the session starts again at position 0. */
void ds_session_reset(ds_session *s);

void ds_session_free(ds_session *s);

#endif
