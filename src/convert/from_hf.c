/* A Hugging Face source, loaded and validated by the model loader (so every check and name
 * mapping of load_hf*.c applies), then written as llama.cpp's converter lays it out:
 *
 *   llama     Q/K rows permuted per head so rotary pairs are adjacent (load_gguf.c undoes this
 *             by running NORM rope); llama3 rope scaling as a rope_freqs.weight tensor of
 *             per-frequency divisors; linear scaling as rope.scaling.*
 *   qwen2     as stored, q/k/v biases as F32
 *   deepseek2 the MLA layout of current llama.cpp: kv_b_proj split per head into attn_k_b
 *             [H, kv_lora, nope] (transposed for absorption) and attn_v_b [H, v, kv_lora],
 *             key_length = kv_lora + rope, value_length = kv_lora, head_count_kv = 1, the
 *             per-head sizes in key_length_mla / value_length_mla; experts stacked into
 *             ffn_*_exps [n_expert, rows, cols]; the router F32. FP8 weights are dequantized
 *             with their 128×128 block scales on the way. The MTP layer is not written.
 *
 * Routing settings GGUF cannot express (moe_layer_freq != 1, sigmoid scoring without noaux_tc,
 * YaRN mscale != mscale_all_dim) are errors rather than a file that computes something else. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"

typedef struct hf_ctx {
    cv_plan *p;
    const ds_model *m;
    const char *arch;
    ds_err *err;
} hf_ctx;

/* ---- metadata ---- */

static int put_u32(hf_ctx *c, const char *key, int64_t v) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", c->arch, key);
    if (v < 0 || v > UINT32_MAX) return ds_errf(c->err, "%s = %lld does not fit in a GGUF u32", full, (long long)v);
    return gguf_set_u32(c->p->w, full, (uint32_t)v, c->err);
}

static int put_f32(hf_ctx *c, const char *key, float v) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", c->arch, key);
    return gguf_set_f32(c->p->w, full, v, c->err);
}

static int put_str(hf_ctx *c, const char *key, const char *v) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", c->arch, key);
    return gguf_set_str(c->p->w, full, v, strlen(v), c->err);
}

static int put_common(hf_ctx *c, const char *dir) {
    const ds_hparams *hp = &c->m->hp;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    return gguf_set_str(c->p->w, "general.architecture", c->arch, strlen(c->arch), c->err) ||
           gguf_set_str(c->p->w, "general.name", base, strlen(base), c->err) ||
           put_u32(c, "context_length", hp->n_ctx_train) || put_u32(c, "embedding_length", hp->n_embd) ||
           put_u32(c, "block_count", hp->n_layer) || put_u32(c, "feed_forward_length", hp->n_ff) ||
           put_u32(c, "attention.head_count", hp->n_head) || put_f32(c, "rope.freq_base", hp->rope_theta) ||
           put_f32(c, "attention.layer_norm_rms_epsilon", hp->rms_eps) || put_u32(c, "vocab_size", hp->n_vocab)
               ? -1
               : 0;
}

static int put_dense_hparams(hf_ctx *c) {
    const ds_hparams *hp = &c->m->hp;
    if (put_u32(c, "attention.head_count_kv", hp->n_head_kv) || put_u32(c, "rope.dimension_count", hp->head_dim))
        return -1;
    if (hp->head_dim != hp->n_embd / hp->n_head &&
        (put_u32(c, "attention.key_length", hp->head_dim) || put_u32(c, "attention.value_length", hp->head_dim)))
        return -1;
    if (hp->rope_scaling == DS_ROPE_SCALING_LINEAR)
        return put_str(c, "rope.scaling.type", "linear") || put_f32(c, "rope.scaling.factor", hp->rope_factor) ? -1 : 0;
    return 0;
}

/* llama3 scaling as llama.cpp stores it: divisors of the plain frequencies, taken from the
 * frequencies the model loader computed (so the GGUF runs the same rotation). */
static int add_rope_freqs(hf_ctx *c) {
    const ds_hparams *hp = &c->m->hp;
    const int half = hp->head_dim / 2;
    float *f = malloc(sizeof(float) * (size_t)half);
    if (!f) return ds_errf(c->err, "out of memory");
    c->p->rope_freqs = f;
    for (int i = 0; i < half; i++)
        f[i] = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hp->head_dim) / c->m->rope_inv_freq[i];
    ds_tensor t = {.name = "rope_freqs.weight", .type = DS_F32, .ndim = 1, .shape = {half}, .data = f,
                   .nbytes = sizeof(float) * (size_t)half};
    return cv_plan_add(c->p, "rope_freqs.weight", 1, t.shape, &t, 1, c->err);
}

static int put_deepseek2_hparams(hf_ctx *c) {
    const ds_hparams *hp = &c->m->hp;
    if (hp->moe_layer_freq != 1)
        return ds_errf(c->err, "moe_layer_freq = %d cannot be expressed in GGUF (llama.cpp assumes 1)", hp->moe_layer_freq);
    if ((hp->scoring == DS_MOE_SIGMOID) != (hp->topk_method == DS_MOE_NOAUX_TC))
        return ds_errf(c->err, "this routing (scoring %s with topk_method %s) cannot be expressed in GGUF, which "
                       "implies noaux_tc from sigmoid scoring", hp->scoring == DS_MOE_SIGMOID ? "sigmoid" : "softmax",
                       hp->topk_method == DS_MOE_NOAUX_TC ? "noaux_tc" : "greedy/group_limited_greedy");
    /* greedy routing ignores groups; GGUF readers infer group-limited routing from n_group > 1 */
    const bool groups = hp->topk_method != DS_MOE_GREEDY;
    if (put_u32(c, "attention.head_count_kv", 1) ||
        put_u32(c, "leading_dense_block_count", hp->first_dense) ||
        (hp->q_lora_rank && put_u32(c, "attention.q_lora_rank", hp->q_lora_rank)) ||
        put_u32(c, "attention.kv_lora_rank", hp->kv_lora_rank) ||
        put_u32(c, "attention.key_length", hp->kv_lora_rank + hp->qk_rope_dim) ||
        put_u32(c, "attention.value_length", hp->kv_lora_rank) ||
        put_u32(c, "attention.key_length_mla", hp->qk_nope_dim + hp->qk_rope_dim) ||
        put_u32(c, "attention.value_length_mla", hp->v_head_dim) ||
        put_u32(c, "rope.dimension_count", hp->qk_rope_dim))
        return -1;
    if (hp->n_expert > 0 &&
        (put_u32(c, "expert_count", hp->n_expert) || put_u32(c, "expert_used_count", hp->n_expert_used) ||
         put_u32(c, "expert_group_count", groups ? hp->n_group : 1) ||
         put_u32(c, "expert_group_used_count", groups ? hp->topk_group : 1) ||
         put_u32(c, "expert_feed_forward_length", hp->moe_ff) ||
         put_u32(c, "expert_shared_count", hp->n_expert_shared) ||
         put_f32(c, "expert_weights_scale", hp->routed_scale) ||
         gguf_set_bool(c->p->w, "deepseek2.expert_weights_norm", hp->norm_topk_prob, c->err) ||
         put_u32(c, "expert_gating_func", hp->scoring == DS_MOE_SIGMOID ? 2 : 1)))
        return -1;
    if (hp->rope_scaling != DS_ROPE_SCALING_YARN) return 0;
    if (hp->yarn_mscale != hp->yarn_mscale_all_dim)
        return ds_errf(c->err, "YaRN mscale %g differs from mscale_all_dim %g, which GGUF cannot express",
                       hp->yarn_mscale, hp->yarn_mscale_all_dim);
    return put_str(c, "rope.scaling.type", "yarn") || put_f32(c, "rope.scaling.factor", hp->rope_factor) ||
                   put_u32(c, "rope.scaling.original_context_length", hp->rope_orig_ctx) ||
                   put_f32(c, "rope.scaling.yarn_log_multiplier", 0.1f * hp->yarn_mscale_all_dim) ||
                   put_f32(c, "rope.scaling.yarn_beta_fast", hp->yarn_beta_fast) ||
                   put_f32(c, "rope.scaling.yarn_beta_slow", hp->yarn_beta_slow)
               ? -1
               : 0;
}

/* ---- tensors ---- */

static int add(hf_ctx *c, const char *name, const ds_tensor *t) {
    return cv_plan_add(c->p, name, t->ndim, t->shape, t, 1, c->err);
}

static int add_vec(hf_ctx *c, const char *name, const float *v, int64_t n) {
    ds_tensor t = {.name = name, .type = DS_F32, .ndim = 1, .shape = {n}, .data = v, .nbytes = sizeof(float) * (size_t)n};
    return cv_plan_add(c->p, name, 1, t.shape, &t, 1, c->err);
}

/* n 2-D tensors of one shape as one [n, rows, cols] tensor. */
static int add_stack(hf_ctx *c, const char *name, const ds_tensor *parts, int n) {
    const int64_t shape[3] = {n, parts[0].shape[0], parts[0].shape[1]};
    return cv_plan_add(c->p, name, 3, shape, parts, n, c->err);
}

/* A llama Q or K projection, rows regrouped per head for NORM rope. */
static int add_permuted(hf_ctx *c, const char *name, const ds_tensor *t, int heads) {
    if (add(c, name, t)) return -1;
    if (c->m->hp.arch == DS_ARCH_LLAMA) c->p->t[c->p->n - 1].perm_heads = heads;
    return 0;
}

/* The name of a tensor of layer l, in the caller's buffer n. */
#define BLK(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, l), n)

static int add_dense_layer(hf_ctx *c, int l) {
    const ds_hparams *hp = &c->m->hp;
    const ds_layer *L = &c->m->layers[l];
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    char n[96];
    if (add_vec(c, BLK("attn_norm.weight"), L->attn_norm, E) || add_permuted(c, BLK("attn_q.weight"), &L->wq, hp->n_head) ||
        add_permuted(c, BLK("attn_k.weight"), &L->wk, hp->n_head_kv) || add(c, BLK("attn_v.weight"), &L->wv) ||
        add(c, BLK("attn_output.weight"), &L->wo) || add_vec(c, BLK("ffn_norm.weight"), L->ffn_norm, E) ||
        add(c, BLK("ffn_gate.weight"), &L->w_gate) || add(c, BLK("ffn_up.weight"), &L->w_up) ||
        add(c, BLK("ffn_down.weight"), &L->w_down))
        return -1;
    if (L->bq && (add_vec(c, BLK("attn_q.bias"), L->bq, Q) || add_vec(c, BLK("attn_k.bias"), L->bk, KV) ||
                  add_vec(c, BLK("attn_v.bias"), L->bv, KV)))
        return -1;
    return 0;
}

static int add_deepseek2_layer(hf_ctx *c, int l) {
    const ds_hparams *hp = &c->m->hp;
    const ds_layer *L = &c->m->layers[l];
    char n[96];
    if (add_vec(c, BLK("attn_norm.weight"), L->attn_norm, hp->n_embd)) return -1;
    if (hp->q_lora_rank) {
        if (add(c, BLK("attn_q_a.weight"), &L->wq_a) || add_vec(c, BLK("attn_q_a_norm.weight"), L->q_a_norm, hp->q_lora_rank) ||
            add(c, BLK("attn_q_b.weight"), &L->wq_b))
            return -1;
    } else if (add(c, BLK("attn_q.weight"), &L->wq)) {
        return -1;
    }
    if (add(c, BLK("attn_kv_a_mqa.weight"), &L->wkv_a) ||
        add_vec(c, BLK("attn_kv_a_norm.weight"), L->kv_a_norm, hp->kv_lora_rank) ||
        add_stack(c, BLK("attn_k_b.weight"), L->w_uk_t, hp->n_head) ||
        add_stack(c, BLK("attn_v_b.weight"), L->w_uv, hp->n_head) || add(c, BLK("attn_output.weight"), &L->wo) ||
        add_vec(c, BLK("ffn_norm.weight"), L->ffn_norm, hp->n_embd))
        return -1;
    if (!L->moe)
        return add(c, BLK("ffn_gate.weight"), &L->w_gate) || add(c, BLK("ffn_up.weight"), &L->w_up) ||
                       add(c, BLK("ffn_down.weight"), &L->w_down)
                   ? -1
                   : 0;
    if (add(c, BLK("ffn_gate_inp.weight"), &L->gate_inp) ||
        (L->exp_bias && add_vec(c, BLK("exp_probs_b.bias"), L->exp_bias, hp->n_expert)) ||
        add_stack(c, BLK("ffn_gate_exps.weight"), L->exp_gate, hp->n_expert) ||
        add_stack(c, BLK("ffn_up_exps.weight"), L->exp_up, hp->n_expert) ||
        add_stack(c, BLK("ffn_down_exps.weight"), L->exp_down, hp->n_expert))
        return -1;
    if (hp->n_expert_shared > 0 &&
        (add(c, BLK("ffn_gate_shexp.weight"), &L->sh_gate) || add(c, BLK("ffn_up_shexp.weight"), &L->sh_up) ||
         add(c, BLK("ffn_down_shexp.weight"), &L->sh_down)))
        return -1;
    return 0;
}
#undef BLK

int cv_plan_hf(cv_plan *p, const char *dir, FILE *log, ds_err *err) {
    if (ds_model_load(dir, &p->model, err)) return -1;
    const ds_model *m = p->model;
    const ds_hparams *hp = &m->hp;
    hf_ctx c = {.p = p, .m = m, .err = err,
                .arch = hp->arch == DS_ARCH_LLAMA ? "llama" : hp->arch == DS_ARCH_QWEN2 ? "qwen2" : "deepseek2"};
    p->n_layer = hp->n_layer;
    p->tied = m->output.data == m->tok_embd.data;
    if (put_common(&c, dir) ||
        (hp->arch == DS_ARCH_DEEPSEEK2 ? put_deepseek2_hparams(&c) : put_dense_hparams(&c)) ||
        cv_hf_vocab(dir, m, p->w, log, err))
        return ds_err_wrap(err, "%s", dir);
    if (hp->rope_scaling == DS_ROPE_SCALING_LLAMA3 && add_rope_freqs(&c)) return -1;
    if (add(&c, "token_embd.weight", &m->tok_embd)) return -1;
    for (int l = 0; l < hp->n_layer; l++)
        if (hp->arch == DS_ARCH_DEEPSEEK2 ? add_deepseek2_layer(&c, l) : add_dense_layer(&c, l)) return -1;
    if (add_vec(&c, "output_norm.weight", m->out_norm, hp->n_embd)) return -1;
    return p->tied ? 0 : add(&c, "output.weight", &m->output);
}
