/* deepseek2 GGUFs (llama.cpp's conversion of DeepSeek-V2/V3/R1; MODELS.md §10). Two layouts:
 * old files carry attn_kv_b like Hugging Face's kv_b_proj; new ones split it per head into
 * attn_k_b [H, kv_lora, nope] (already transposed for absorption) and attn_v_b [H, v, kv_lora],
 * and write key_length = 576 with the per-head sizes in key_length_mla / value_length_mla.
 * Experts are stacked in 3-D tensors, sliced here into per-expert views. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/model_internal.h"

#define ARCH "deepseek2"

int gg_read_deepseek2(const gguf_file *g, ds_hparams *hp, ds_err *err) {
    int key_len, val_len, key_mla, val_mla, gating;
    float ylm;
    if (gg_arch_int(g, ARCH, "attention.q_lora_rank", 0, &hp->q_lora_rank, err) ||
        gg_arch_int(g, ARCH, "attention.kv_lora_rank", -1, &hp->kv_lora_rank, err) ||
        gg_arch_int(g, ARCH, "rope.dimension_count", -1, &hp->qk_rope_dim, err) ||
        gg_arch_int(g, ARCH, "attention.key_length", -1, &key_len, err) ||
        gg_arch_int(g, ARCH, "attention.value_length", -1, &val_len, err) ||
        gg_arch_int(g, ARCH, "attention.key_length_mla", key_len, &key_mla, err) ||
        gg_arch_int(g, ARCH, "attention.value_length_mla", val_len, &val_mla, err) ||
        gg_arch_int(g, ARCH, "leading_dense_block_count", 0, &hp->first_dense, err) ||
        gg_arch_int(g, ARCH, "expert_feed_forward_length", 0, &hp->moe_ff, err) ||
        gg_arch_int(g, ARCH, "expert_count", 0, &hp->n_expert, err) ||
        gg_arch_int(g, ARCH, "expert_used_count", 0, &hp->n_expert_used, err) ||
        gg_arch_int(g, ARCH, "expert_shared_count", 0, &hp->n_expert_shared, err) ||
        gg_arch_int(g, ARCH, "expert_group_count", 1, &hp->n_group, err) ||
        gg_arch_int(g, ARCH, "expert_group_used_count", 1, &hp->topk_group, err) ||
        gg_arch_int(g, ARCH, "expert_gating_func", 1, &gating, err) ||
        gg_arch_float(g, ARCH, "expert_weights_scale", 1.0, &hp->routed_scale, err))
        return -1;
    hp->qk_nope_dim = key_mla - hp->qk_rope_dim;
    hp->v_head_dim = val_mla;
    hp->head_dim = key_mla;
    hp->n_head_kv = hp->n_head;
    hp->moe_layer_freq = 1;
    bool norm = false;
    if (gguf_get_bool(g, ARCH ".expert_weights_norm", &norm, err) < 0) return -1;
    hp->norm_topk_prob = norm;
    if (gating != 1 && gating != 2)
        return ds_errf(err, "%s: " ARCH ".expert_gating_func %d is unknown (1 = softmax, 2 = sigmoid)", g->label, gating);
    hp->scoring = gating == 2 ? DS_MOE_SIGMOID : DS_MOE_SOFTMAX;
    /* GGUF does not store topk_method: sigmoid routing is V3's noaux_tc; softmax with groups is
     * V2's group-limited greedy. */
    hp->topk_method = gating == 2 ? DS_MOE_NOAUX_TC : hp->n_group > 1 ? DS_MOE_GROUP_LIMITED_GREEDY : DS_MOE_GREEDY;
    gguf_str type = {0};
    int rc = gguf_get_str(g, ARCH ".rope.scaling.type", &type, err);
    if (rc < 0) return -1;
    hp->rope_scaling = DS_ROPE_SCALING_NONE;
    if (rc == 1 && !(type.len == 4 && !memcmp(type.ptr, "none", 4))) {
        if (!(type.len == 4 && !memcmp(type.ptr, "yarn", 4)))
            return ds_errf(err, "%s: " ARCH ".rope.scaling.type '%.*s' is not supported (yarn, none)", g->label,
                           (int)(type.len > 32 ? 32 : type.len), type.ptr);
        hp->rope_scaling = DS_ROPE_SCALING_YARN;
        if (gg_arch_float(g, ARCH, "rope.scaling.factor", -1, &hp->rope_factor, err) ||
            gg_arch_int(g, ARCH, "rope.scaling.original_context_length", -1, &hp->rope_orig_ctx, err) ||
            gg_arch_float(g, ARCH, "rope.scaling.yarn_log_multiplier", 0, &ylm, err) ||
            gg_arch_float(g, ARCH, "rope.scaling.yarn_beta_fast", 32, &hp->yarn_beta_fast, err) ||
            gg_arch_float(g, ARCH, "rope.scaling.yarn_beta_slow", 1, &hp->yarn_beta_slow, err))
            return -1;
        /* llama.cpp stores 0.1·mscale_all_dim; DeepSeek's mscale equals mscale_all_dim in every
         * release, so cos/sin stay unscaled. */
        hp->yarn_mscale = hp->yarn_mscale_all_dim = ylm / 0.1f;
        if (!(hp->rope_factor > 0)) return ds_errf(err, "%s: " ARCH ".rope.scaling.factor must be positive", g->label);
    }
    return 0;
}

/* Per-expert 2-D views of a stacked [n_expert, rows, cols] tensor. */
static int bind_experts(const gguf_file *g, const char *name, int n_expert, int64_t rows, int64_t cols, ds_tensor *out,
                        ds_err *err) {
    const ds_tensor *t = gguf_find_tensor(g, name);
    if (!t) return ds_errf(err, "%s: missing tensor '%s'", g->label, name);
    if (t->ndim != 3 || t->shape[0] != n_expert || t->shape[1] != rows || t->shape[2] != cols)
        return ds_errf(err, "%s: tensor '%s' should have shape [%d, %lld, %lld]", g->label, name, n_expert,
                       (long long)rows, (long long)cols);
    const size_t per = t->nbytes / (size_t)n_expert;
    for (int e = 0; e < n_expert; e++) {
        out[e] = *t;
        out[e].ndim = 2;
        out[e].shape[0] = rows;
        out[e].shape[1] = cols;
        out[e].data = (const uint8_t *)t->data + (size_t)e * per;
        out[e].nbytes = per;
        if (ds_check_weight(&out[e], rows, cols, g->label, err)) return -1;
    }
    return 0;
}

int gg_bind_deepseek2_layer(ds_model *m, const gguf_file *g, int l, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    ds_layer *L = &m->layers[l];
    const int64_t E = hp->n_embd, H = hp->n_head, QD = H * hp->head_dim;
    char n[96];
#define NAME(fmt) (snprintf(n, sizeof n, "blk.%d." fmt, l), n)
    if (gg_bind_vector(m, g, NAME("attn_norm.weight"), E, &L->attn_norm, err) ||
        gg_bind_vector(m, g, NAME("ffn_norm.weight"), E, &L->ffn_norm, err))
        return -1;
    if (hp->q_lora_rank) {
        if (gg_bind_weight(g, NAME("attn_q_a.weight"), hp->q_lora_rank, E, &L->wq_a, err) ||
            gg_bind_vector(m, g, NAME("attn_q_a_norm.weight"), hp->q_lora_rank, &L->q_a_norm, err) ||
            gg_bind_weight(g, NAME("attn_q_b.weight"), QD, hp->q_lora_rank, &L->wq_b, err))
            return -1;
    } else if (gg_bind_weight(g, NAME("attn_q.weight"), QD, E, &L->wq, err)) {
        return -1;
    }
    if (gg_bind_weight(g, NAME("attn_kv_a_mqa.weight"), hp->kv_lora_rank + hp->qk_rope_dim, E, &L->wkv_a, err) ||
        gg_bind_vector(m, g, NAME("attn_kv_a_norm.weight"), hp->kv_lora_rank, &L->kv_a_norm, err) ||
        gg_bind_weight(g, NAME("attn_output.weight"), E, H * hp->v_head_dim, &L->wo, err))
        return -1;
    const ds_tensor *kv_b = gguf_find_tensor(g, NAME("attn_kv_b.weight"));
    if (kv_b) {
        ds_tensor t;
        if (gg_bind_weight(g, n, H * (hp->qk_nope_dim + hp->v_head_dim), hp->kv_lora_rank, &t, err) ||
            ds_mla_absorb_kv_b(m, L, &t, g->label, err))
            return -1;
    } else {
        const ds_tensor *k_b = gguf_find_tensor(g, NAME("attn_k_b.weight"));
        if (!k_b) return ds_errf(err, "%s: missing tensor 'blk.%d.attn_kv_b.weight' (or attn_k_b + attn_v_b)", g->label, l);
        const ds_tensor *v_b = gguf_find_tensor(g, NAME("attn_v_b.weight"));
        if (!v_b) return ds_errf(err, "%s: missing tensor '%s'", g->label, n);
        if (ds_mla_absorb_k_v(m, L, k_b, v_b, g->label, err)) return -1;
    }
    L->moe = ds_deepseek2_layer_is_moe(hp, l);
    if (!L->moe)
        return gg_bind_weight(g, NAME("ffn_gate.weight"), hp->n_ff, E, &L->w_gate, err) ||
               gg_bind_weight(g, NAME("ffn_up.weight"), hp->n_ff, E, &L->w_up, err) ||
               gg_bind_weight(g, NAME("ffn_down.weight"), E, hp->n_ff, &L->w_down, err) ? -1 : 0;
    ds_tensor gate;
    if (gg_bind_weight(g, NAME("ffn_gate_inp.weight"), hp->n_expert, E, &gate, err)) return -1;
    float *router = ds_model_alloc_f32(m, (size_t)(hp->n_expert * E));
    if (!router) return ds_errf(err, "out of memory");
    for (int e = 0; e < hp->n_expert; e++) ds_get_row(&gate, e, router + (size_t)e * E);
    L->gate_inp = (ds_tensor){.name = gate.name, .type = DS_F32, .ndim = 2, .shape = {hp->n_expert, E}, .data = router,
                              .nbytes = (size_t)(hp->n_expert * E) * sizeof(float)};
    if (gguf_find_tensor(g, NAME("exp_probs_b.bias")) && gg_bind_vector(m, g, n, hp->n_expert, &L->exp_bias, err))
        return -1;
    if (hp->topk_method == DS_MOE_NOAUX_TC && !L->exp_bias)
        return ds_errf(err, "%s: sigmoid routing needs tensor 'blk.%d.exp_probs_b.bias'", g->label, l);
    L->exp_gate = calloc((size_t)hp->n_expert * 3, sizeof(ds_tensor));
    if (!L->exp_gate) return ds_errf(err, "out of memory");
    L->exp_up = L->exp_gate + hp->n_expert;
    L->exp_down = L->exp_up + hp->n_expert;
    if (bind_experts(g, NAME("ffn_gate_exps.weight"), hp->n_expert, hp->moe_ff, E, L->exp_gate, err) ||
        bind_experts(g, NAME("ffn_up_exps.weight"), hp->n_expert, hp->moe_ff, E, L->exp_up, err) ||
        bind_experts(g, NAME("ffn_down_exps.weight"), hp->n_expert, E, hp->moe_ff, L->exp_down, err))
        return -1;
    if (hp->n_expert_shared > 0) {
        const int64_t F = (int64_t)hp->n_expert_shared * hp->moe_ff;
        if (gg_bind_weight(g, NAME("ffn_gate_shexp.weight"), F, E, &L->sh_gate, err) ||
            gg_bind_weight(g, NAME("ffn_up_shexp.weight"), F, E, &L->sh_up, err) ||
            gg_bind_weight(g, NAME("ffn_down_shexp.weight"), E, F, &L->sh_down, err))
            return -1;
    }
#undef NAME
    return 0;
}
