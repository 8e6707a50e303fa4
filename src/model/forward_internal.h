/* Internal to model/: the scratch buffers of a forward pass and the per-family passes.
 * T = tokens in the batch, E = hidden size, H = heads. */
#ifndef DS_MODEL_FORWARD_INTERNAL_H
#define DS_MODEL_FORWARD_INTERNAL_H

#include <stdbool.h>

#include "kernels/kernels.h"
#include "model/model.h"

/* A run of up to DS_ATTN_MAX_Q tokens of one sequence whose queries attend together. */
typedef struct ds_attn_run {
    int start, n;  /* entries start..start+n-1 of ds_forward_ctx.attn_order */
    int seq, max_pos;
} ds_attn_run;

/* How a batch's attention is split into pool tasks: task i takes run i / head_groups and, of
 * the heads sharing one KV head, the group i % head_groups of up to heads_per_task heads. */
typedef struct ds_attn_plan {
    int n_runs, heads_per_task, head_groups, groups_per_kv;
} ds_attn_plan;

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
    float *scores;      /* (threads, max_ctx), MLA's expanded form only */
    float *attn_scratch;      /* (threads, attn_scratch_floats) for ds_attention */
    size_t attn_scratch_floats;
    int32_t *attn_order;      /* (T) the batch's tokens grouped by sequence, batch order within one */
    ds_attn_run *attn_runs;   /* (T) */
    /* MLA */
    float *cq;          /* (T, q_lora) */
    float *qn;          /* (H, T, qk_nope) q_nope gathered per head */
    float *qlat;        /* (H, T, kv_lora + qk_rope) absorbed queries: q_lat, then q_pe */
    float *olat;        /* (H, T, kv_lora) attention over the latents */
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

/* Groups the batch's tokens into runs (c->attn_runs) and chooses how many heads share a task:
 * as many as share a KV head, unless that leaves fewer tasks than threads. */
void ds_attn_plan_make(ds_forward_ctx *c, const ds_batch *b, int n_head, int n_head_kv, int n_threads,
                       ds_attn_plan *plan);

/* Task `task` of a plan: its run, KV head and heads [*h0, *h1). */
const ds_attn_run *ds_attn_plan_task(const ds_forward_ctx *c, const ds_attn_plan *plan, int n_head, int n_head_kv,
                                     int task, int *kv_head, int *h0, int *h1);

/* One layer of the cache as ds_attention reads it, for a sequence's block table: keys from
 * k_off floats into each k row, values from v_off into each v row (into the k rows when the
 * cache has no v, as MLA's latents). */
ds_attn_kv ds_attn_kv_layer(const ds_kv_cache *kv, int layer, const int32_t *table, size_t k_off, size_t v_off,
                            int dk, int dv);

/* Fills c->cos_sin for every token: angle = pos · inv_freq (float32), times the model's
 * rope_attn_factor. */
void ds_rope_table(const ds_model *m, ds_forward_ctx *c, const ds_batch *b, int n_freq);

int ds_forward_deepseek2(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool, const ds_batch *b,
                         float *logits, ds_err *err);

/* Final norm and output head for the rows that want logits. */
void ds_forward_logits(const ds_model *m, ds_forward_ctx *c, ds_pool *pool, const ds_batch *b, float *logits);

#endif
