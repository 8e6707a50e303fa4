/* Internal to model/: the scratch buffers of a forward pass and the per-family passes.
 * T = tokens in the batch, E = hidden size, H = heads. */
#ifndef DS_MODEL_FORWARD_INTERNAL_H
#define DS_MODEL_FORWARD_INTERNAL_H

#include <stdbool.h>

#include "model/model.h"

struct ds_forward_ctx {
    int max_tokens, max_ctx, n_threads_scratch;
    bool mla_expanded;  /* DSINFER_MLA=expanded: MLA through per-head K/V (verification only) */
    float *x;           /* (T, E) residual stream */
    float *h;           /* (T, E) normalized input of a sub-block */
    float *q;           /* (T, H·head_dim) */
    float *k, *v;       /* dense: (T, Hkv·D) each; MLA: k = (T, kv_lora + qk_rope), v unused */
    float *att;         /* (T, H·D) or (T, H·v_head): attention output before o_proj */
    float *gate, *up;   /* (T, F) with F the widest MLP */
    float *cos_sin;     /* (T, rope dims / 2, 2) rotary table per token */
    float *scores;      /* (threads, max_ctx) */
    /* MLA */
    float *cq;          /* (T, q_lora) */
    float *qn;          /* (H, T, qk_nope) q_nope gathered per head */
    float *qlat, *olat; /* (H, T, kv_lora) absorbed queries; attention over latents */
    float *expand_tmp;  /* (threads, qk_nope + v_head) */
    /* MoE */
    float *router;      /* (T, n_expert) scores */
    int32_t *sel;       /* (T, K) chosen experts, best first */
    float *sel_w;       /* (T, K) their weights */
    float *exp_out;     /* (T, K, E) each chosen expert's output */
    float *xg, *yg;     /* (T, E) rows gathered for one expert, and its outputs */
    int32_t *rows;      /* (T·K) which (token, slot) each gathered row is */
};

/* Validates a batch against the model, the context and the cache. */
int ds_check_batch(const ds_model *m, const ds_forward_ctx *c, const ds_kv_cache *kv, const ds_batch *b, ds_err *err);

/* Fills c->cos_sin for every token: angle = pos · inv_freq (float32), times the model's
 * rope_attn_factor. */
void ds_rope_table(const ds_model *m, ds_forward_ctx *c, const ds_batch *b, int n_freq);

int ds_forward_deepseek2(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool, const ds_batch *b,
                         float *logits, ds_err *err);

/* Final norm and output head for the rows that want logits. */
void ds_forward_logits(const ds_model *m, ds_forward_ctx *c, ds_pool *pool, const ds_batch *b, float *logits);

#endif
