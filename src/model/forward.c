/* The dense decoder forward pass (Llama and Qwen2), batch-first:
 *
 *   x = embed(tokens)                                   (T, E)
 *   for each layer:
 *     h = rmsnorm(x)                                    (T, E)
 *     q, k, v = h·Wq (+bq), h·Wk (+bk), h·Wv (+bv)      (T, H·D), (T, Hkv·D), (T, Hkv·D)
 *     rope(q, k) at each token's position
 *     k, v → paged cache at (sequence, position)
 *     a = softmax(q·Kᵀ/√D over positions 0..pos)·V     (T, H·D)   per (token, head)
 *     x += a·Wo
 *     x += (silu(h'·Wg) ⊙ h'·Wu)·Wd  with h' = rmsnorm(x)
 *   logits = rmsnorm(x)·Wout for the rows that want them
 *
 * Batch invariance: every matmul row and every attention (token, head) is computed by a
 * fixed sequence of operations that depends only on that token's inputs and its sequence's
 * cached K/V; nothing is split across threads. Attention takes the queries of a run of tokens
 * of one sequence and the heads sharing a KV head together, so that they share the K/V loads
 * (ds_attention), which leaves each query's arithmetic as it is alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/forward_internal.h"

static float *alloc_f32(size_t n) { return n ? malloc(n * sizeof(float)) : NULL; }

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

ds_forward_ctx *ds_forward_ctx_create(const ds_model *m, int max_tokens, int max_ctx) {
    const ds_hparams *hp = &m->hp;
    ds_forward_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max_tokens = max_tokens;
    c->max_ctx = max_ctx;
    c->n_threads_scratch = 256;
    const char *mla = getenv("DSINFER_MLA");
    c->mla_expanded = mla && !strcmp(mla, "expanded");
    const bool ds2 = hp->arch == DS_ARCH_DEEPSEEK2;
    const size_t T = (size_t)max_tokens, E = (size_t)hp->n_embd, H = (size_t)hp->n_head, D = (size_t)hp->head_dim;
    const size_t KD = ds2 ? (size_t)(hp->kv_lora_rank + hp->qk_rope_dim) : (size_t)hp->n_head_kv * D;
    const size_t AD = H * (ds2 ? (size_t)hp->v_head_dim : D);
    const int dk = ds2 ? hp->kv_lora_rank + hp->qk_rope_dim : hp->head_dim;
    const size_t F = max3((size_t)hp->n_ff, (size_t)hp->n_expert_shared * (size_t)hp->moe_ff, (size_t)hp->moe_ff);
    const size_t K = (size_t)hp->n_expert_used, dc = (size_t)hp->kv_lora_rank;
    c->x = alloc_f32(T * E);
    c->h = alloc_f32(T * E);
    c->q = alloc_f32(T * H * D);
    c->k = alloc_f32(T * KD);
    c->v = ds2 ? NULL : alloc_f32(T * KD);
    c->att = alloc_f32(T * AD);
    c->gate = alloc_f32(T * F);
    c->up = alloc_f32(T * F);
    c->cos_sin = alloc_f32(T * D);
    /* whole cache lines per thread */
    c->attn_scratch_floats = (ds_attention_scratch_floats(dk) + 15) & ~(size_t)15;
    c->attn_scratch = alloc_f32((size_t)c->n_threads_scratch * c->attn_scratch_floats);
    c->attn_order = malloc(T * sizeof *c->attn_order);
    c->attn_runs = malloc(T * sizeof *c->attn_runs);
    bool ok = c->x && c->h && c->q && c->k && (ds2 || c->v) && c->att && c->gate && c->up && c->cos_sin &&
              c->attn_scratch && c->attn_order && c->attn_runs;
    if (ds2) {
        c->scores = alloc_f32((size_t)c->n_threads_scratch * (size_t)max_ctx);
        c->cq = alloc_f32(T * (size_t)(hp->q_lora_rank ? hp->q_lora_rank : 1));
        c->qn = alloc_f32(H * T * (size_t)hp->qk_nope_dim);
        c->qlat = alloc_f32(H * T * (size_t)dk);
        c->olat = alloc_f32(H * T * dc);
        c->expand_tmp = alloc_f32((size_t)c->n_threads_scratch * (size_t)(hp->qk_nope_dim + hp->v_head_dim));
        ok = ok && c->scores && c->cq && c->qn && c->qlat && c->olat && c->expand_tmp;
        if (hp->n_expert) {
            c->router = alloc_f32(T * (size_t)hp->n_expert);
            c->sel = malloc(T * K * sizeof *c->sel);
            c->sel_w = alloc_f32(T * K);
            c->exp_out = alloc_f32(T * K * E);
            c->xg = alloc_f32(T * E);
            c->yg = alloc_f32(T * E);
            c->rows = malloc(T * K * sizeof *c->rows);
            ok = ok && c->router && c->sel && c->sel_w && c->exp_out && c->xg && c->yg && c->rows;
        }
    }
    if (!ok) {
        ds_forward_ctx_free(c);
        return NULL;
    }
    return c;
}

void ds_forward_ctx_free(ds_forward_ctx *c) {
    if (!c) return;
    float *bufs[] = {c->x, c->h, c->q, c->k, c->v, c->att, c->gate, c->up, c->cos_sin, c->scores, c->attn_scratch,
                     c->cq, c->qn, c->qlat, c->olat, c->expand_tmp, c->router, c->sel_w, c->exp_out, c->xg, c->yg};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c->attn_order);
    free(c->attn_runs);
    free(c->sel);
    free(c->rows);
    free(c);
}

/* Rotates each head of vec (n_heads × D) in place by the token's angles. */
static void apply_rope(float *vec, int n_heads, int D, const float *cs, ds_rope_style style) {
    const int half = D / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = vec + (size_t)h * (size_t)D;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            int a = style == DS_ROPE_NEOX ? i : 2 * i;
            int b = style == DS_ROPE_NEOX ? i + half : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x1 * c + x0 * s;
        }
    }
}

ds_attn_kv ds_attn_kv_layer(const ds_kv_cache *kv, int layer, const int32_t *table, size_t k_off, size_t v_off,
                            int dk, int dv) {
    const size_t slots = (size_t)layer * (size_t)kv->n_blocks * (size_t)kv->block_size; /* as ds_kv_slot */
    return (ds_attn_kv){.k = kv->k + slots * (size_t)kv->width_k + k_off,
                        .v = (kv->v ? kv->v + slots * (size_t)kv->width_v : kv->k + slots * (size_t)kv->width_k) + v_off,
                        .blocks = table, .block_size = kv->block_size, .k_stride = kv->width_k,
                        .v_stride = kv->v ? kv->width_v : kv->width_k, .dk = dk, .dv = dv};
}

/* Costliest runs (latest positions) first, so that the pool's last tasks are short ones. */
static int cmp_run(const void *a, const void *b) {
    const ds_attn_run *x = a, *y = b;
    if (x->max_pos != y->max_pos) return y->max_pos - x->max_pos;
    return x->start - y->start;
}

void ds_attn_plan_make(ds_forward_ctx *c, const ds_batch *b, int n_head, int n_head_kv, int n_threads,
                       ds_attn_plan *plan) {
    const int T = b->n_tokens, G = n_head / n_head_kv;
    int hp = G < DS_ATTN_MAX_Q ? G : DS_ATTN_MAX_Q;
    const int run_len = DS_ATTN_MAX_Q / hp;
    /* Stable insertion sort by sequence: linear for the usual batch, whose sequences come in
     * contiguous stretches. */
    for (int t = 0; t < T; t++) {
        int i = t;
        for (; i > 0 && b->seq[c->attn_order[i - 1]] > b->seq[t]; i--) c->attn_order[i] = c->attn_order[i - 1];
        c->attn_order[i] = t;
    }
    int n_runs = 0;
    for (int i = 0; i < T; i++) {
        const int t = c->attn_order[i];
        ds_attn_run *r = n_runs ? &c->attn_runs[n_runs - 1] : NULL;
        if (!r || r->seq != b->seq[t] || r->n == run_len) {
            r = &c->attn_runs[n_runs++];
            *r = (ds_attn_run){.start = i, .n = 0, .seq = b->seq[t], .max_pos = -1};
        }
        r->n++;
        r->max_pos = b->pos[t] > r->max_pos ? b->pos[t] : r->max_pos;
    }
    qsort(c->attn_runs, (size_t)n_runs, sizeof *c->attn_runs, cmp_run);
    if (n_runs * n_head_kv < n_threads) hp = 1;
    const int groups_per_kv = (G + hp - 1) / hp;
    *plan = (ds_attn_plan){.n_runs = n_runs, .heads_per_task = hp, .head_groups = n_head_kv * groups_per_kv,
                           .groups_per_kv = groups_per_kv};
}

const ds_attn_run *ds_attn_plan_task(const ds_forward_ctx *c, const ds_attn_plan *plan, int n_head, int n_head_kv,
                                     int task, int *kv_head, int *h0, int *h1) {
    const int G = n_head / n_head_kv, hg = task % plan->head_groups;
    *kv_head = hg / plan->groups_per_kv;
    *h0 = *kv_head * G + (hg % plan->groups_per_kv) * plan->heads_per_task;
    *h1 = *h0 + plan->heads_per_task < (*kv_head + 1) * G ? *h0 + plan->heads_per_task : (*kv_head + 1) * G;
    return &c->attn_runs[task / plan->head_groups];
}

typedef struct attn_job {
    const ds_model *m;
    ds_forward_ctx *c;
    const ds_kv_cache *kv;
    const ds_batch *b;
    const ds_attn_plan *plan;
    int layer;
} attn_job;

/* The queries of one run of tokens and one group of heads sharing a KV head, against that
 * sequence's cached K/V. */
static void attn_task(void *ctx, int task, int thread) {
    const attn_job *j = ctx;
    const ds_hparams *hp = &j->m->hp;
    const int H = hp->n_head, D = hp->head_dim;
    int kvh, h0, h1;
    const ds_attn_run *run = ds_attn_plan_task(j->c, j->plan, H, hp->n_head_kv, task, &kvh, &h0, &h1);
    ds_attn_query qs[DS_ATTN_MAX_Q];
    int n = 0;
    for (int i = 0; i < run->n; i++) {
        const int t = j->c->attn_order[run->start + i];
        for (int h = h0; h < h1; h++) {
            const size_t off = ((size_t)t * (size_t)H + (size_t)h) * (size_t)D;
            qs[n++] = (ds_attn_query){.q = j->c->q + off, .out = j->c->att + off, .pos = j->b->pos[t]};
        }
    }
    const size_t off = (size_t)kvh * (size_t)D;
    const ds_attn_kv akv = ds_attn_kv_layer(j->kv, j->layer, j->b->block_tables[run->seq], off, off, D, D);
    ds_attention(&akv, qs, n, 1.0f / sqrtf((float)D), j->c->attn_scratch + (size_t)thread * j->c->attn_scratch_floats);
}

int ds_check_batch(const ds_model *m, const ds_forward_ctx *c, const ds_kv_cache *kv, const ds_batch *b, ds_err *err) {
    if (b->n_tokens <= 0 || b->n_tokens > c->max_tokens)
        return ds_errf(err, "batch of %d tokens (this context holds 1..%d)", b->n_tokens, c->max_tokens);
    for (int i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= m->hp.n_vocab)
            return ds_errf(err, "token id %d at batch position %d is outside the vocabulary (0..%d)",
                           b->tokens[i], i, m->hp.n_vocab - 1);
        if (b->seq[i] < 0 || b->seq[i] >= b->n_seqs) return ds_errf(err, "batch token %d: bad sequence index", i);
        if (b->pos[i] < 0 || b->pos[i] >= c->max_ctx)
            return ds_errf(err, "position %d is beyond the context size %d", b->pos[i], c->max_ctx);
        if (b->pos[i] / kv->block_size >= b->block_counts[b->seq[i]])
            return ds_errf(err, "position %d of sequence %d has no KV block", b->pos[i], b->seq[i]);
    }
    return 0;
}

void ds_rope_table(const ds_model *m, ds_forward_ctx *c, const ds_batch *b, int n_freq) {
    for (int t = 0; t < b->n_tokens; t++) {
        float *cs = c->cos_sin + (size_t)t * 2 * (size_t)n_freq;
        for (int i = 0; i < n_freq; i++) {
            /* transformers computes the angle as float32 position × float32 inverse frequency */
            float angle = (float)b->pos[t] * m->rope_inv_freq[i];
            cs[2 * i] = cosf(angle) * m->rope_attn_factor;
            cs[2 * i + 1] = sinf(angle) * m->rope_attn_factor;
        }
    }
}

void ds_forward_logits(const ds_model *m, ds_forward_ctx *c, ds_pool *pool, const ds_batch *b, float *logits) {
    const int E = m->hp.n_embd;
    int n_out = 0;
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->want_logits && !b->want_logits[t]) continue;
        ds_rmsnorm(c->h + (size_t)n_out * E, c->x + (size_t)t * E, m->out_norm, E, m->hp.rms_eps);
        n_out++;
    }
    if (n_out > 0) ds_matmul(pool, &m->output, c->h, n_out, logits, m->hp.n_vocab);
}

int ds_forward(const ds_model *m, ds_forward_ctx *c, ds_kv_cache *kv, ds_pool *pool, const ds_batch *b,
               float *logits, ds_err *err) {
    if (ds_check_batch(m, c, kv, b, err)) return -1;
    if (ds_pool_size(pool) > c->n_threads_scratch) return ds_errf(err, "too many threads for this context");
    if (m->hp.arch == DS_ARCH_DEEPSEEK2) return ds_forward_deepseek2(m, c, kv, pool, b, logits, err);
    const ds_hparams *hp = &m->hp;
    const int T = b->n_tokens, E = hp->n_embd, H = hp->n_head, Hkv = hp->n_head_kv, D = hp->head_dim, F = hp->n_ff;
    const int QD = H * D, KD = Hkv * D;

    for (int t = 0; t < T; t++) ds_get_row(&m->tok_embd, b->tokens[t], c->x + (size_t)t * E);
    ds_rope_table(m, c, b, D / 2);
    ds_attn_plan plan;
    ds_attn_plan_make(c, b, H, Hkv, ds_pool_size(pool), &plan);

    for (int l = 0; l < hp->n_layer; l++) {
        const ds_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) ds_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->attn_norm, E, hp->rms_eps);
        ds_matmul(pool, &L->wq, c->h, T, c->q, QD);
        ds_matmul(pool, &L->wk, c->h, T, c->k, KD);
        ds_matmul(pool, &L->wv, c->h, T, c->v, KD);
        for (int t = 0; t < T; t++) {
            float *q = c->q + (size_t)t * QD, *k = c->k + (size_t)t * KD, *v = c->v + (size_t)t * KD;
            if (L->bq) {
                for (int i = 0; i < QD; i++) q[i] += L->bq[i];
                for (int i = 0; i < KD; i++) k[i] += L->bk[i];
                for (int i = 0; i < KD; i++) v[i] += L->bv[i];
            }
            apply_rope(q, H, D, c->cos_sin + (size_t)t * D, hp->rope_style);
            apply_rope(k, Hkv, D, c->cos_sin + (size_t)t * D, hp->rope_style);
            const int32_t *table = b->block_tables[b->seq[t]];
            size_t slot = ds_kv_slot(kv, l, table, b->pos[t]);
            memcpy(kv->k + slot * (size_t)KD, k, sizeof(float) * (size_t)KD);
            memcpy(kv->v + slot * (size_t)KD, v, sizeof(float) * (size_t)KD);
        }
        attn_job aj = {.m = m, .c = c, .kv = kv, .b = b, .plan = &plan, .layer = l};
        ds_pool_run(pool, plan.n_runs * plan.head_groups, attn_task, &aj);
        ds_matmul(pool, &L->wo, c->att, T, c->h, E);
        for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->h[i];

        for (int t = 0; t < T; t++) ds_rmsnorm(c->h + (size_t)t * E, c->x + (size_t)t * E, L->ffn_norm, E, hp->rms_eps);
        ds_matmul(pool, &L->w_gate, c->h, T, c->gate, F);
        ds_matmul(pool, &L->w_up, c->h, T, c->up, F);
        for (int t = 0; t < T; t++) ds_swiglu(c->gate + (size_t)t * F, c->up + (size_t)t * F, F);
        ds_matmul(pool, &L->w_down, c->gate, T, c->h, E);
        for (size_t i = 0; i < (size_t)T * E; i++) c->x[i] += c->h[i];
    }

    ds_forward_logits(m, c, pool, b, logits);
    return 0;
}
