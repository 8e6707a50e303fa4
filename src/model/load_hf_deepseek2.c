/* DeepSeek-V2 / V3 from Hugging Face directories (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM):
 * the MLA, MoE and YaRN fields of config.json and the tensors of one decoder layer. The MTP
 * layer of V3/R1 (index num_hidden_layers) is simply never bound. Names: MODELS.md §1.3. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_util.h"
#include "kernels/kernels.h"
#include "model/model_internal.h"

static int get_int(const json_t *cfg, const char *file, const char *key, int def, int *out, ds_err *err) {
    int64_t v;
    int rc = ds_json_int(cfg, key, file, &v, err);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (def < 0) return ds_errf(err, "%s: missing required field '%s'", file, key);
        v = def;
    }
    if (v < 0 || v > (1 << 30)) return ds_errf(err, "%s: field '%s' is out of range (%lld)", file, key, (long long)v);
    *out = (int)v;
    return 0;
}

static int get_float(const json_t *obj, const char *file, const char *key, double def, float *out, ds_err *err) {
    double v;
    int rc = ds_json_num(obj, key, file, &v, err);
    if (rc < 0) return -1;
    *out = (float)(rc ? v : def);
    return 0;
}

static int read_yarn(const json_t *cfg, const char *file, ds_hparams *hp, ds_err *err) {
    const json_t *rs = json_object_get(cfg, "rope_scaling");
    hp->rope_scaling = DS_ROPE_SCALING_NONE;
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) return ds_errf(err, "%s: field 'rope_scaling' must be an object or null", file);
    const char *type = NULL;
    if (ds_json_str(rs, "type", file, &type, err) < 0 || (!type && ds_json_str(rs, "rope_type", file, &type, err) < 0))
        return -1;
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "yarn") != 0)
        return ds_errf(err, "%s: rope_scaling type '%s' is not supported for DeepSeek-V2/V3 (yarn)", file, type);
    hp->rope_scaling = DS_ROPE_SCALING_YARN;
    if (get_float(rs, file, "factor", -1, &hp->rope_factor, err) ||
        get_int(rs, file, "original_max_position_embeddings", 4096, &hp->rope_orig_ctx, err) ||
        get_float(rs, file, "beta_fast", 32, &hp->yarn_beta_fast, err) ||
        get_float(rs, file, "beta_slow", 1, &hp->yarn_beta_slow, err) ||
        get_float(rs, file, "mscale", 1, &hp->yarn_mscale, err) ||
        get_float(rs, file, "mscale_all_dim", 0, &hp->yarn_mscale_all_dim, err))
        return ds_err_wrap(err, "rope_scaling");
    return 0;
}

int hf_read_deepseek2_config(const json_t *cfg, const char *file, ds_hparams *hp, ds_err *err) {
    hp->rope_style = DS_ROPE_NORM; /* adjacent pairs on the 64 rope dims (MODELS.md §3.2) */
    if (get_int(cfg, file, "q_lora_rank", 0, &hp->q_lora_rank, err) ||
        get_int(cfg, file, "kv_lora_rank", -1, &hp->kv_lora_rank, err) ||
        get_int(cfg, file, "qk_nope_head_dim", -1, &hp->qk_nope_dim, err) ||
        get_int(cfg, file, "qk_rope_head_dim", -1, &hp->qk_rope_dim, err) ||
        get_int(cfg, file, "v_head_dim", -1, &hp->v_head_dim, err) ||
        get_int(cfg, file, "n_routed_experts", 0, &hp->n_expert, err) ||
        get_int(cfg, file, "num_experts_per_tok", 0, &hp->n_expert_used, err) ||
        get_int(cfg, file, "n_shared_experts", 0, &hp->n_expert_shared, err) ||
        get_int(cfg, file, "moe_intermediate_size", 0, &hp->moe_ff, err) ||
        get_int(cfg, file, "first_k_dense_replace", 0, &hp->first_dense, err) ||
        get_int(cfg, file, "moe_layer_freq", 1, &hp->moe_layer_freq, err) ||
        get_int(cfg, file, "n_group", 1, &hp->n_group, err) ||
        get_int(cfg, file, "topk_group", 1, &hp->topk_group, err) ||
        get_float(cfg, file, "routed_scaling_factor", 1.0, &hp->routed_scale, err))
        return -1;
    hp->head_dim = hp->qk_nope_dim + hp->qk_rope_dim;
    hp->n_head_kv = hp->n_head; /* unused by MLA: one latent per token */
    if (ds_json_bool(cfg, "norm_topk_prob", file, &hp->norm_topk_prob, err) < 0) return -1;
    const char *method = "greedy", *scoring = "softmax";
    if (ds_json_str(cfg, "topk_method", file, &method, err) < 0 || ds_json_str(cfg, "scoring_func", file, &scoring, err) < 0)
        return -1;
    /* The original remote code spelled the default "gready". */
    if (!strcmp(method, "greedy") || !strcmp(method, "gready")) hp->topk_method = DS_MOE_GREEDY;
    else if (!strcmp(method, "group_limited_greedy")) hp->topk_method = DS_MOE_GROUP_LIMITED_GREEDY;
    else if (!strcmp(method, "noaux_tc")) hp->topk_method = DS_MOE_NOAUX_TC;
    else
        return ds_errf(err, "%s: unknown topk_method '%s' (supported: greedy, group_limited_greedy, noaux_tc)", file, method);
    if (!strcmp(scoring, "softmax")) hp->scoring = DS_MOE_SOFTMAX;
    else if (!strcmp(scoring, "sigmoid")) hp->scoring = DS_MOE_SIGMOID;
    else return ds_errf(err, "%s: unknown scoring_func '%s' (supported: softmax, sigmoid)", file, scoring);
    const json_t *qc = json_object_get(cfg, "quantization_config");
    if (qc && !json_is_null(qc)) {
        const char *qm = NULL, *fmt = NULL;
        if (ds_json_str(qc, "quant_method", file, &qm, err) < 0 || ds_json_str(qc, "fmt", file, &fmt, err) < 0) return -1;
        if (!qm || strcmp(qm, "fp8") != 0 || (fmt && strcmp(fmt, "e4m3") != 0))
            return ds_errf(err, "%s: quantization_config %s/%s is not supported (fp8 e4m3 with 128x128 block scales is)",
                           file, qm ? qm : "?", fmt ? fmt : "?");
        const json_t *bs = json_object_get(qc, "weight_block_size");
        if (bs && !(json_is_array(bs) && json_array_size(bs) == 2 &&
                    json_integer_value(json_array_get(bs, 0)) == DS_FP8_BLOCK &&
                    json_integer_value(json_array_get(bs, 1)) == DS_FP8_BLOCK))
            return ds_errf(err, "%s: quantization_config.weight_block_size must be [128, 128]", file);
    }
    return read_yarn(cfg, file, hp, err);
}

/* A 2-D weight copied to f32 (the router: HF computes it in f32). */
static int bind_f32_matrix(ds_model *m, const hf_storage *s, const char *dir, const char *name, int64_t rows,
                           int64_t cols, ds_tensor *out, ds_err *err) {
    ds_tensor t;
    if (hf_bind_weight(m, s, dir, name, rows, cols, &t, err)) return -1;
    float *buf = ds_model_alloc_f32(m, (size_t)(rows * cols));
    if (!buf) return ds_errf(err, "out of memory");
    for (int64_t r = 0; r < rows; r++) ds_get_row(&t, r, buf + r * cols);
    *out = (ds_tensor){.name = t.name, .type = DS_F32, .ndim = 2, .shape = {rows, cols}, .data = buf,
                       .nbytes = (size_t)(rows * cols) * sizeof(float)};
    return 0;
}

int hf_bind_deepseek2_layer(ds_model *m, const hf_storage *s, const char *dir, int l, ds_err *err) {
    const ds_hparams *hp = &m->hp;
    ds_layer *L = &m->layers[l];
    const int64_t E = hp->n_embd, H = hp->n_head, QD = H * hp->head_dim;
    char n[192];
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
    if (hf_bind_vector(m, s, dir, NAME("input_layernorm.weight"), E, &L->attn_norm, err) ||
        hf_bind_vector(m, s, dir, NAME("post_attention_layernorm.weight"), E, &L->ffn_norm, err))
        return -1;
    if (hp->q_lora_rank) {
        if (hf_bind_weight(m, s, dir, NAME("self_attn.q_a_proj.weight"), hp->q_lora_rank, E, &L->wq_a, err) ||
            hf_bind_vector(m, s, dir, NAME("self_attn.q_a_layernorm.weight"), hp->q_lora_rank, &L->q_a_norm, err) ||
            hf_bind_weight(m, s, dir, NAME("self_attn.q_b_proj.weight"), QD, hp->q_lora_rank, &L->wq_b, err))
            return -1;
    } else if (hf_bind_weight(m, s, dir, NAME("self_attn.q_proj.weight"), QD, E, &L->wq, err)) {
        return -1;
    }
    ds_tensor kv_b;
    if (hf_bind_weight(m, s, dir, NAME("self_attn.kv_a_proj_with_mqa.weight"), hp->kv_lora_rank + hp->qk_rope_dim, E,
                       &L->wkv_a, err) ||
        hf_bind_vector(m, s, dir, NAME("self_attn.kv_a_layernorm.weight"), hp->kv_lora_rank, &L->kv_a_norm, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.kv_b_proj.weight"), H * (hp->qk_nope_dim + hp->v_head_dim),
                       hp->kv_lora_rank, &kv_b, err) ||
        ds_mla_absorb_kv_b(m, L, &kv_b, dir, err) ||
        hf_bind_weight(m, s, dir, NAME("self_attn.o_proj.weight"), E, H * hp->v_head_dim, &L->wo, err))
        return -1;
    L->moe = ds_deepseek2_layer_is_moe(hp, l);
    if (!L->moe)
        return hf_bind_weight(m, s, dir, NAME("mlp.gate_proj.weight"), hp->n_ff, E, &L->w_gate, err) ||
               hf_bind_weight(m, s, dir, NAME("mlp.up_proj.weight"), hp->n_ff, E, &L->w_up, err) ||
               hf_bind_weight(m, s, dir, NAME("mlp.down_proj.weight"), E, hp->n_ff, &L->w_down, err) ? -1 : 0;
    if (bind_f32_matrix(m, s, dir, NAME("mlp.gate.weight"), hp->n_expert, E, &L->gate_inp, err)) return -1;
    if (hf_find(s, NAME("mlp.gate.e_score_correction_bias")) &&
        hf_bind_vector(m, s, dir, n, hp->n_expert, &L->exp_bias, err))
        return -1;
    if (hp->topk_method == DS_MOE_NOAUX_TC && !L->exp_bias)
        return ds_errf(err, "%s: topk_method noaux_tc needs tensor 'model.layers.%d.mlp.gate.e_score_correction_bias'", dir, l);
    L->exp_gate = calloc((size_t)hp->n_expert * 3, sizeof(ds_tensor));
    if (!L->exp_gate) return ds_errf(err, "out of memory");
    L->exp_up = L->exp_gate + hp->n_expert;
    L->exp_down = L->exp_up + hp->n_expert;
    for (int e = 0; e < hp->n_expert; e++) {
        char g[192], u[192], d[192];
        snprintf(g, sizeof g, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
        snprintf(u, sizeof u, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
        snprintf(d, sizeof d, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
        if (hf_bind_weight(m, s, dir, g, hp->moe_ff, E, &L->exp_gate[e], err) ||
            hf_bind_weight(m, s, dir, u, hp->moe_ff, E, &L->exp_up[e], err) ||
            hf_bind_weight(m, s, dir, d, E, hp->moe_ff, &L->exp_down[e], err))
            return -1;
    }
    if (hp->n_expert_shared > 0) {
        const int64_t F = (int64_t)hp->n_expert_shared * hp->moe_ff;
        if (hf_bind_weight(m, s, dir, NAME("mlp.shared_experts.gate_proj.weight"), F, E, &L->sh_gate, err) ||
            hf_bind_weight(m, s, dir, NAME("mlp.shared_experts.up_proj.weight"), F, E, &L->sh_up, err) ||
            hf_bind_weight(m, s, dir, NAME("mlp.shared_experts.down_proj.weight"), E, F, &L->sh_down, err))
            return -1;
    }
#undef NAME
    return 0;
}
