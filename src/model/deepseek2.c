/* DeepSeek-V2 / V3: Multi-head Latent Attention and DeepSeekMoE (MODELS.md §3–5).
 *
 *   h = rmsnorm(x)
 *   q = q_b(rmsnorm(q_a(h)))  or  q_proj(h)           (T, H·(nope + rope))
 *   [c | k_pe] = kv_a(h);  c = rmsnorm(c)              (T, kv_lora + rope)
 *   rope (adjacent pairs, YaRN frequencies) on q_pe and k_pe; [c | k_pe] → cache (576 values)
 *   absorbed attention per (token, head), all heads on one "KV head" (ds_attention):
 *     q_lat = W_UKᵀ q_nope                              (kv_lora)
 *     score(s) = [q_lat | q_pe] · [c_s | k_pe_s] · scale over the sequence's positions 0..pos
 *     o = W_UV (Σ p(s) c_s)                             (v_head)
 *   x += o_proj(o);  x += FFN(rmsnorm(x)), FFN = dense SwiGLU or MoE:
 *     scores = softmax|sigmoid(router · h); experts chosen per topk_method;
 *     y = Σ_k w_k expert_k(h) + shared(h)
 *
 * The cache holds only the normalized latent and the roped k_pe. The "expanded" form
 * (DSINFER_MLA=expanded) rebuilds per-head K and V from the cached latents; it exists to check
 * the absorbed form, which is the one path used for every position. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/forward_internal.h"
#include "model/model_internal.h"

/* ---- loading helpers -------------------------------------------------------------------- */

bool ds_deepseek2_layer_is_moe(const ds_hparams *hp, int l) {
    return hp->n_expert > 0 && l >= hp->first_dense && hp->moe_layer_freq > 0 && l % hp->moe_layer_freq == 0;
}

int ds_deepseek2_check(const ds_model *m, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    if (hp->kv_lora_rank <= 0 || hp->qk_nope_dim <= 0 || hp->qk_rope_dim <= 0 || hp->v_head_dim <= 0 ||
        hp->qk_rope_dim % 2)
        return ds_errf(err, "%s: kv_lora_rank, qk_nope_head_dim, v_head_dim must be positive and qk_rope_head_dim "
                       "positive and even", m->path);
    if (hp->n_expert == 0) return 0;
    if (hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert || hp->moe_ff <= 0)
        return ds_errf(err, "%s: num_experts_per_tok %d must be in 1..n_routed_experts (%d), moe_intermediate_size positive",
                       m->path, hp->n_expert_used, hp->n_expert);
    if (hp->n_group <= 0 || hp->n_expert % hp->n_group != 0)
        return ds_errf(err, "%s: n_routed_experts %d is not divisible by n_group %d", m->path, hp->n_expert, hp->n_group);
    if (hp->topk_group <= 0 || hp->topk_group > hp->n_group)
        return ds_errf(err, "%s: topk_group %d must be in 1..n_group (%d)", m->path, hp->topk_group, hp->n_group);
    if (hp->topk_method != DS_MOE_GREEDY && hp->topk_group * (hp->n_expert / hp->n_group) < hp->n_expert_used)
        return ds_errf(err, "%s: topk_group %d groups of %d experts cannot hold num_experts_per_tok %d", m->path,
                       hp->topk_group, hp->n_expert / hp->n_group, hp->n_expert_used);
    if (hp->topk_method == DS_MOE_NOAUX_TC && hp->n_expert / hp->n_group < 2)
        return ds_errf(err, "%s: noaux_tc scores groups by their top-2 experts; groups of %d are too small", m->path,
                       hp->n_expert / hp->n_group);
    return 0;
}

/* Per-head f32 matrices, in one allocation: n_head views of [kv_lora, nope] then n_head of
 * [v_head, kv_lora]. */
static int alloc_absorbed(ds_model *m, ds_layer *L, float **uk, float **uv, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const size_t H = (size_t)hp->n_head, dc = (size_t)hp->kv_lora_rank, dn = (size_t)hp->qk_nope_dim,
                 dv = (size_t)hp->v_head_dim;
    *uk = ds_model_alloc_f32(m, H * dc * dn);
    *uv = ds_model_alloc_f32(m, H * dv * dc);
    L->w_uk_t = calloc(2 * H, sizeof(ds_tensor));
    if (!*uk || !*uv || !L->w_uk_t) return ds_errf(err, "out of memory for the absorbed MLA matrices");
    L->w_uv = L->w_uk_t + H;
    for (size_t h = 0; h < H; h++) {
        L->w_uk_t[h] = (ds_tensor){.name = "w_uk_t", .type = DS_F32, .ndim = 2, .shape = {(int64_t)dc, (int64_t)dn},
                                   .data = *uk + h * dc * dn, .nbytes = dc * dn * sizeof(float)};
        L->w_uv[h] = (ds_tensor){.name = "w_uv", .type = DS_F32, .ndim = 2, .shape = {(int64_t)dv, (int64_t)dc},
                                 .data = *uv + h * dv * dc, .nbytes = dv * dc * sizeof(float)};
    }
    return 0;
}

int ds_mla_absorb_kv_b(ds_model *m, ds_layer *L, const ds_tensor *kv_b, const char *where, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const int H = hp->n_head, dc = hp->kv_lora_rank, dn = hp->qk_nope_dim, dv = hp->v_head_dim;
    float *uk, *uv;
    if (alloc_absorbed(m, L, &uk, &uv, err)) return ds_err_wrap(err, "%s", where);
    float *row = malloc(sizeof(float) * (size_t)dc);
    if (!row) return ds_errf(err, "out of memory");
    /* kv_b rows per head: [k_nope (dn) | v (dv)] */
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < dn; i++) {
            ds_get_row(kv_b, (int64_t)h * (dn + dv) + i, row);
            for (int c = 0; c < dc; c++) uk[((size_t)h * dc + c) * dn + i] = row[c];
        }
        for (int j = 0; j < dv; j++) ds_get_row(kv_b, (int64_t)h * (dn + dv) + dn + j, uv + ((size_t)h * dv + j) * dc);
    }
    free(row);
    return 0;
}

int ds_mla_absorb_k_v(ds_model *m, ds_layer *L, const ds_tensor *k_b, const ds_tensor *v_b, const char *where,
                      ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const int64_t H = hp->n_head, dc = hp->kv_lora_rank, dn = hp->qk_nope_dim, dv = hp->v_head_dim;
    if (k_b->ndim != 3 || k_b->shape[0] != H || k_b->shape[1] != dc || k_b->shape[2] != dn)
        return ds_errf(err, "%s: tensor '%s' should have shape [%lld, %lld, %lld]", where, k_b->name, (long long)H,
                       (long long)dc, (long long)dn);
    if (v_b->ndim != 3 || v_b->shape[0] != H || v_b->shape[1] != dv || v_b->shape[2] != dc)
        return ds_errf(err, "%s: tensor '%s' should have shape [%lld, %lld, %lld]", where, v_b->name, (long long)H,
                       (long long)dv, (long long)dc);
    if (!ds_dtype_can_dequantize(k_b->type) || !ds_dtype_can_dequantize(v_b->type))
        return ds_errf(err, "%s: attn_k_b / attn_v_b of type %s / %s cannot be read", where, ds_dtype_name(k_b->type),
                       ds_dtype_name(v_b->type));
    float *uk, *uv;
    if (alloc_absorbed(m, L, &uk, &uv, err)) return ds_err_wrap(err, "%s", where);
    for (int64_t r = 0; r < H * dc; r++) ds_get_row(k_b, r, uk + r * dn);
    for (int64_t r = 0; r < H * dv; r++) ds_get_row(v_b, r, uv + r * dc);
    return 0;
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Adjacent-pair rotation of n_pairs pairs at x with the token's table. */
static void rope_pairs(float *x, const float *cs, int n_pairs) {
    for (int i = 0; i < n_pairs; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1], x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c - x1 * s;
        x[2 * i + 1] = x1 * c + x0 * s;
    }
}

typedef struct mla_job {
    const ds_model *m;
    ds_forward_ctx *c;
    const ds_kv_cache *kv;
    const ds_batch *b;
    const ds_layer *L;
    const ds_attn_plan *plan;
    int layer;
} mla_job;

/* Absorbed attention of one run of tokens and a group of heads: the queries [q_lat | q_pe]
 * against the cached [latent | k_pe] rows, the values being the latents. */
static void mla_task(void *ctx, int task, int thread) {
    const mla_job *j = ctx;
    const ds_hparams *hp = &j->m->hp;
    const int H = hp->n_head, T = j->b->n_tokens, dc = hp->kv_lora_rank, dk = dc + hp->qk_rope_dim;
    int kvh, h0, h1;
    const ds_attn_run *run = ds_attn_plan_task(j->c, j->plan, H, 1, task, &kvh, &h0, &h1);
    ds_attn_query qs[DS_ATTN_MAX_Q];
    int n = 0;
    for (int i = 0; i < run->n; i++) {
        const int t = j->c->attn_order[run->start + i];
        for (int h = h0; h < h1; h++) {
            const size_t r = (size_t)h * (size_t)T + (size_t)t;
            qs[n++] = (ds_attn_query){.q = j->c->qlat + r * (size_t)dk, .out = j->c->olat + r * (size_t)dc,
                                      .pos = j->b->pos[t]};
        }
    }
    const ds_attn_kv akv = ds_attn_kv_layer(j->kv, j->layer, j->b->block_tables[run->seq], 0, 0, dk, dc);
    ds_attention(&akv, qs, n, j->m->attn_scale, j->c->attn_scratch + (size_t)thread * j->c->attn_scratch_floats);
}

/* The expanded form of one (token, head), for checking the absorbed one: per-head keys and
 * values rebuilt from each cached latent, scores over positions 0..pos in order, softmax,
 * weighted sum in order. */
static void mla_expanded_task(void *ctx, int task, int thread) {
    const mla_job *j = ctx;
    const ds_hparams *hp = &j->m->hp;
    const int H = hp->n_head, dc = hp->kv_lora_rank, dr = hp->qk_rope_dim;
    const int dn = hp->qk_nope_dim, dv = hp->v_head_dim, W = dc + dr;
    const int t = task / H, h = task % H, pos = j->b->pos[t];
    const int32_t *table = j->b->block_tables[j->b->seq[t]];
    const float *q_pe = j->c->q + (size_t)t * H * (dn + dr) + (size_t)h * (dn + dr) + dn;
    const float *q_nope = q_pe - dn;
    float *scores = j->c->scores + (size_t)thread * (size_t)j->c->max_ctx;
    float *tmp = j->c->expand_tmp + (size_t)thread * (size_t)(dn + dv);
    const ds_tensor *uk = &j->L->w_uk_t[h], *uv = &j->L->w_uv[h];
    for (int p = 0; p <= pos; p++) {
        const float *cp = j->kv->k + ds_kv_slot(j->kv, j->layer, table, p) * (size_t)W;
        /* k_nope = W_UK c: column i of the stored W_UKᵀ */
        const float *ukt = uk->data;
        for (int i = 0; i < dn; i++) {
            float acc = 0;
            for (int k = 0; k < dc; k++) acc += ukt[(size_t)k * dn + i] * cp[k];
            tmp[i] = acc;
        }
        scores[p] = (ds_dot_f32(q_nope, tmp, dn) + ds_dot_f32(q_pe, cp + dc, dr)) * j->m->attn_scale;
    }
    ds_softmax(scores, pos + 1);
    float *out = j->c->att + (size_t)t * H * dv + (size_t)h * dv;
    memset(out, 0, sizeof(float) * (size_t)dv);
    for (int p = 0; p <= pos; p++) {
        const float *cp = j->kv->k + ds_kv_slot(j->kv, j->layer, table, p) * (size_t)W;
        const float w = scores[p];
        for (int i = 0; i < dv; i++) out[i] += w * ds_dot_f32((const float *)uv->data + (size_t)i * dc, cp, dc);
    }
}

static void mla_attention(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool, const ds_batch *b,
                          const ds_attn_plan *plan, const ds_layer *L, int layer) {
    const ds_hparams *hp = &m->hp;
    const int T = b->n_tokens, H = hp->n_head, dc = hp->kv_lora_rank, dr = hp->qk_rope_dim, dn = hp->qk_nope_dim,
              dv = hp->v_head_dim, QW = dn + dr, W = dc + dr, E = hp->n_embd;
    if (hp->q_lora_rank) {
        ds_matmul(pool, &L->wq_a, c->h, T, c->cq, hp->q_lora_rank);
        for (int t = 0; t < T; t++) {
            float *r = c->cq + (size_t)t * hp->q_lora_rank;
            ds_rmsnorm(r, r, L->q_a_norm, hp->q_lora_rank, hp->rms_eps);
        }
        ds_matmul(pool, &L->wq_b, c->cq, T, c->q, (int64_t)H * QW);
    } else {
        ds_matmul(pool, &L->wq, c->h, T, c->q, (int64_t)H * QW);
    }
    ds_matmul(pool, &L->wkv_a, c->h, T, c->k, W);
    for (int t = 0; t < T; t++) {
        const float *cs = c->cos_sin + (size_t)t * dr;
        float *ckv = c->k + (size_t)t * W;
        ds_rmsnorm(ckv, ckv, L->kv_a_norm, dc, hp->rms_eps);
        rope_pairs(ckv + dc, cs, dr / 2);
        for (int h = 0; h < H; h++) {
            float *qh = c->q + (size_t)t * H * QW + (size_t)h * QW;
            rope_pairs(qh + dn, cs, dr / 2);
            memcpy(c->qn + ((size_t)h * T + t) * dn, qh, sizeof(float) * (size_t)dn);
        }
        size_t slot = ds_kv_slot(kv, layer, b->block_tables[b->seq[t]], b->pos[t]);
        memcpy(kv->k + slot * (size_t)W, ckv, sizeof(float) * (size_t)W);
    }
    mla_job job = {.m = m, .c = c, .kv = kv, .b = b, .L = L, .plan = plan, .layer = layer};
    if (c->mla_expanded) {
        ds_pool_run(pool, T * H, mla_expanded_task, &job);
    } else {
        /* q_lat = W_UKᵀ q_nope, followed by q_pe: one query of W floats per (head, token) */
        for (int h = 0; h < H; h++) {
            float *ql = c->qlat + (size_t)h * T * W;
            ds_matmul(pool, &L->w_uk_t[h], c->qn + (size_t)h * T * dn, T, ql, W);
            for (int t = 0; t < T; t++)
                memcpy(ql + (size_t)t * W + dc, c->q + (size_t)t * H * QW + (size_t)h * QW + dn, sizeof(float) * (size_t)dr);
        }
        ds_pool_run(pool, plan->n_runs * plan->head_groups, mla_task, &job);
        for (int h = 0; h < H; h++)
            ds_matmul(pool, &L->w_uv[h], c->olat + (size_t)h * T * dc, T, c->att + (size_t)h * dv, (int64_t)H * dv);
    }
    ds_matmul(pool, &L->wo, c->att, T, c->h, E);
    for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->h[i];
}

/* SwiGLU MLP on n rows of x (stride E) into y (stride E). */
static void mlp(ds_pool *pool, ds_forward_ctx *c, const ds_tensor *g, const ds_tensor *u, const ds_tensor *d,
                const float *x, int n, float *y, int E) {
    const int F = (int)g->shape[0];
    ds_matmul(pool, g, x, n, c->gate, F);
    ds_matmul(pool, u, x, n, c->up, F);
    for (int t = 0; t < n; t++) ds_swiglu(c->gate + (size_t)t * F, c->up + (size_t)t * F, F);
    ds_matmul(pool, d, c->gate, n, y, E);
}

/* Is expert a ahead of expert b? Higher score first, lower index on ties. */
static bool ahead(const float *s, int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); }

/* Chooses the token's experts (best first) and their weights (MODELS.md §4). */
static void route(const ds_hparams *hp, const ds_layer *L, float *logits, int32_t *sel, float *w) {
    const int N = hp->n_expert, K = hp->n_expert_used, G = hp->n_group, per = N / G;
    float scores[N], choice[N], gscore[G];
    if (hp->scoring == DS_MOE_SIGMOID) {
        for (int e = 0; e < N; e++) scores[e] = 1.0f / (1.0f + expf(-logits[e]));
    } else {
        memcpy(scores, logits, sizeof scores);
        ds_softmax(scores, N);
    }
    for (int e = 0; e < N; e++) choice[e] = scores[e] + (hp->topk_method == DS_MOE_NOAUX_TC ? L->exp_bias[e] : 0.0f);
    if (hp->topk_method != DS_MOE_GREEDY && G > 1) {
        for (int g = 0; g < G; g++) {
            /* V2: the group's best score; V3: the sum of its two best (biased) scores */
            int b1 = g * per, b2 = -1;
            for (int e = g * per + 1; e < (g + 1) * per; e++) {
                if (ahead(choice, e, b1)) b2 = b1, b1 = e;
                else if (b2 < 0 || ahead(choice, e, b2)) b2 = e;
            }
            gscore[g] = hp->topk_method == DS_MOE_NOAUX_TC ? choice[b1] + choice[b2] : choice[b1];
        }
        bool keep[G];
        memset(keep, 0, sizeof keep);
        for (int k = 0; k < hp->topk_group; k++) {
            int best = -1;
            for (int g = 0; g < G; g++)
                if (!keep[g] && (best < 0 || ahead(gscore, g, best))) best = g;
            keep[best] = true;
        }
        /* Dropped groups can never be chosen (DeepSeek's reference masks them with -inf). */
        for (int e = 0; e < N; e++)
            if (!keep[e / per]) choice[e] = -INFINITY;
    }
    bool taken[N];
    memset(taken, 0, sizeof taken);
    float total = 0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < N; e++)
            if (!taken[e] && (best < 0 || ahead(choice, e, best))) best = e;
        taken[best] = true;
        sel[k] = best;
        w[k] = scores[best];
        total += w[k];
    }
    for (int k = 0; k < K; k++) {
        if (hp->norm_topk_prob) w[k] /= total + 1e-20f;
        w[k] *= hp->routed_scale;
    }
}

static void moe(const ds_model *m, ds_forward_ctx *c, ds_pool *pool, const ds_layer *L, int T) {
    const ds_hparams *hp = &m->hp;
    const int E = hp->n_embd, N = hp->n_expert, K = hp->n_expert_used;
    ds_matmul(pool, &L->gate_inp, c->h, T, c->router, N);
    for (int t = 0; t < T; t++) route(hp, L, c->router + (size_t)t * N, c->sel + (size_t)t * K, c->sel_w + (size_t)t * K);
    /* Tokens grouped per expert; each row's result depends only on that row. */
    for (int e = 0; e < N; e++) {
        int n = 0;
        for (int i = 0; i < T * K; i++)
            if (c->sel[i] == e) {
                c->rows[n] = i;
                memcpy(c->xg + (size_t)n * E, c->h + (size_t)(i / K) * E, sizeof(float) * (size_t)E);
                n++;
            }
        if (n == 0) continue;
        mlp(pool, c, &L->exp_gate[e], &L->exp_up[e], &L->exp_down[e], c->xg, n, c->yg, E);
        for (int r = 0; r < n; r++)
            memcpy(c->exp_out + (size_t)c->rows[r] * E, c->yg + (size_t)r * E, sizeof(float) * (size_t)E);
    }
    if (hp->n_expert_shared > 0) mlp(pool, c, &L->sh_gate, &L->sh_up, &L->sh_down, c->h, T, c->yg, E);
    for (int t = 0; t < T; t++) {
        float *x = c->x + (size_t)t * E;
        for (int i = 0; i < E; i++) {
            float y = 0;
            for (int k = 0; k < K; k++) y += c->sel_w[t * K + k] * c->exp_out[((size_t)t * K + k) * E + i];
            if (hp->n_expert_shared > 0) y += c->yg[(size_t)t * E + i];
            x[i] += y;
        }
    }
}

int ds_forward_deepseek2(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool, const ds_batch *b,
                         float *logits, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    const int T = b->n_tokens, E = hp->n_embd;
    for (int t = 0; t < T; t++) ds_get_row(&m->tok_embd, b->tokens[t], c->x + (size_t)t * E);
    ds_rope_table(m, c, b, hp->qk_rope_dim / 2);
    ds_attn_plan plan;
    ds_attn_plan_make(c, b, hp->n_head, 1, ds_pool_size(pool), &plan);
    for (int l = 0; l < hp->n_layer; l++) {
        const ds_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) ds_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->attn_norm, E, hp->rms_eps);
        mla_attention(m, c, kv, pool, b, &plan, L, l);
        for (int t = 0; t < T; t++) ds_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm, E, hp->rms_eps);
        if (L->moe) {
            moe(m, c, pool, L, T);
        } else {
            /* the down projection reads only c->gate, so it may overwrite its input */
            mlp(pool, c, &L->w_gate, &L->w_up, &L->w_down, c->h, T, c->h, E);
            for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->h[i];
        }
    }
    ds_forward_logits(m, c, pool, b, logits);
    return 0;
}
